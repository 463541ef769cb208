#include "reward/rules/blocklist.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>

#include "core/config.h"
#include "core/error.h"
#include "reward/rules/answer.h"

namespace rlft::reward {
namespace {

std::vector<std::string> read_phrases(const std::string& path) {
  std::ifstream in(path);
  RLFT_CHECK(in.good(), "cannot read the blocklist file '{}'", path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    const std::string_view t = trim(line);
    if (!t.empty() && t[0] != '#') out.emplace_back(t);
  }
  return out;
}

RegexOptions regex_options(const BlocklistOptions& o) {
  RegexOptions r;
  r.case_insensitive = !o.case_sensitive;
  return r;
}

}  // namespace

BlocklistOptions BlocklistOptions::from_config(const ConfigView& c) {
  BlocklistOptions o;
  o.words = c.get<std::vector<std::string>>("words", o.words);
  o.patterns = c.get<std::vector<std::string>>("patterns", o.patterns);
  o.file = c.get<std::string>("file", o.file);
  o.case_sensitive = c.get<bool>("case_sensitive", o.case_sensitive);
  o.whole_words = c.get<bool>("whole_words", o.whole_words);
  o.penalty = c.get<double>("penalty", o.penalty);
  o.check_completions = c.get<bool>("check_completions", o.check_completions);
  o.drop_prompts = c.get<bool>("drop_prompts", o.drop_prompts);
  return o;
}

void BlocklistOptions::validate() const {
  if (words.empty() && patterns.empty() && file.empty()) throw OptionError("", "", "set words, patterns or file");
  for (std::size_t i = 0; i < words.size(); ++i)
    RLFT_CHECK_OPTION(!trim(words[i]).empty(), "words", words[i], "words[{}] is empty (it would match everything)", i);
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    std::string error;
    try {
      Regex r(patterns[i], regex_options(*this));
      if (r.search("")) error = "matches the empty text (it would match everything)";
    } catch (const Error& e) {
      error = e.what();
    }
    RLFT_CHECK_OPTION(error.empty(), "patterns", patterns[i], "patterns[{}] /{}/: {}", i, patterns[i], error);
  }
  if (!file.empty()) {
    std::string error;
    try {
      read_phrases(file);
    } catch (const Error& e) {
      error = e.what();
    }
    RLFT_CHECK_OPTION(error.empty(), "file", file, "{}", error);
  }
  RLFT_CHECK_OPTION(std::isfinite(penalty) && penalty <= 0, "penalty", penalty, "must be a finite number <= 0");
  RLFT_CHECK_OPTION(check_completions || drop_prompts, "check_completions", check_completions,
                    "with drop_prompts also false the list does nothing");
}

Blocklist::Blocklist(const BlocklistOptions& o) {
  std::vector<std::string> phrases = o.words;
  if (!o.file.empty())
    for (auto& p : read_phrases(o.file)) phrases.push_back(std::move(p));
  // Phrases become alternations of escaped literals, a few thousand characters per regex:
  // one pattern for a long list would pass PCRE2's compiled-size limit.
  constexpr std::size_t kChunkChars = 4000;
  std::string alternatives;
  auto flush = [&] {
    if (alternatives.empty()) return;
    const std::string pattern = o.whole_words ? "(?<!\\w)(?:" + alternatives + ")(?!\\w)" : "(?:" + alternatives + ")";
    regexes_.emplace_back(pattern, regex_options(o));
    alternatives.clear();
  };
  for (const auto& p : phrases) {
    if (trim(p).empty()) continue;
    if (!alternatives.empty()) alternatives += '|';
    alternatives += Regex::escape(trim(p));
    if (alternatives.size() >= kChunkChars) flush();
  }
  flush();
  for (const auto& p : o.patterns) regexes_.emplace_back(p, regex_options(o));
}

bool Blocklist::matches(std::string_view text) const {
  for (const auto& r : regexes_)
    if (r.search(text)) return true;
  return false;
}

BlocklistReward::BlocklistReward(std::string name, BlocklistOptions options)
    : RewardFn(std::move(name)), o_(std::move(options)), list_(o_) {}

std::vector<double> BlocklistReward::score(const ScoreBatch& batch) {
  std::vector<double> out(batch.size(), 0.0);
  if (!o_.check_completions) return out;
  for (std::size_t i = 0; i < batch.size(); ++i)
    if (list_.matches(batch.completions[i])) out[i] = o_.penalty;
  return out;
}

bool BlocklistReward::keep_prompt(const data::Example& example) const {
  if (!o_.drop_prompts) return true;
  for (const auto& m : example.messages)
    if (list_.matches(m.content)) return false;
  return true;
}

std::unique_ptr<RewardFn> make_blocklist_reward(const std::string& name, const ConfigView& section,
                                                const RewardContext&) {
  return std::make_unique<BlocklistReward>(name, read_options<BlocklistOptions>(section));
}

}  // namespace rlft::reward
