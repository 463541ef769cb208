#include "reward/rules/exact_match.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>

#include "core/config.h"
#include "core/error.h"
#include "reward/rules/answer.h"

namespace rlft::reward {

ExactMatchOptions ExactMatchOptions::from_config(const ConfigView& c) {
  ExactMatchOptions o;
  o.extract = c.get<std::string>("extract", o.extract);
  o.case_sensitive = c.get<bool>("case_sensitive", o.case_sensitive);
  o.collapse_whitespace = c.get<bool>("collapse_whitespace", o.collapse_whitespace);
  o.strip_punctuation = c.get<bool>("strip_punctuation", o.strip_punctuation);
  o.remove_articles = c.get<bool>("remove_articles", o.remove_articles);
  o.correct = c.get<double>("correct", o.correct);
  o.incorrect = c.get<double>("incorrect", o.incorrect);
  return o;
}

void ExactMatchOptions::validate() const {
  RLFT_CHECK_OPTION(extract == "none" || extract == "answer_tag" || extract == "boxed" || extract == "last_line",
                    "extract", extract, "must be none, answer_tag, boxed or last_line");
  RLFT_CHECK_OPTION(std::isfinite(correct), "correct", correct, "must be a finite number");
  RLFT_CHECK_OPTION(std::isfinite(incorrect), "incorrect", incorrect, "must be a finite number");
  RLFT_CHECK_OPTION(correct > incorrect, "correct", correct, "must be greater than `incorrect`");
}

std::string normalise_answer(std::string_view text, const ExactMatchOptions& o) {
  std::string s;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (o.strip_punctuation && u < 0x80 && std::ispunct(u)) continue;
    s += o.case_sensitive ? c : static_cast<char>(std::tolower(u));
  }
  // Split into words on whitespace, drop articles, join with one space.
  if (!o.collapse_whitespace && !o.remove_articles) return std::string(trim(s));
  std::string out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    std::size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j == i) break;
    const std::string word = s.substr(i, j - i);
    std::string lower = word;
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const bool article = o.remove_articles && (lower == "a" || lower == "an" || lower == "the");
    if (!article) {
      if (!out.empty()) out += ' ';
      out += word;
    }
    i = j;
  }
  return out;
}

std::optional<std::string> extract_for_match(std::string_view completion, const std::string& extract) {
  if (extract == "answer_tag") {
    auto tags = extract_answer_tags(completion);
    if (tags.empty()) return std::nullopt;
    return tags.back();
  }
  if (extract == "boxed") {
    auto boxed = extract_boxed(completion);
    if (boxed.empty()) return std::nullopt;
    return boxed.back();
  }
  if (extract == "last_line") return last_line(completion);
  return std::string(completion);
}

bool exact_match(std::string_view completion, std::string_view reference, const ExactMatchOptions& o) {
  const auto answer = extract_for_match(completion, o.extract);
  if (!answer) return false;
  const std::string a = normalise_answer(*answer, o);
  return !a.empty() && a == normalise_answer(reference, o);
}

ExactMatchReward::ExactMatchReward(std::string name, ExactMatchOptions options)
    : RewardFn(std::move(name)), o_(std::move(options)) {}

std::vector<double> ExactMatchReward::score(const ScoreBatch& batch) {
  std::vector<double> out(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i)
    out[i] = exact_match(batch.completions[i], batch.examples[i]->reference, o_) ? o_.correct : o_.incorrect;
  return out;
}

void ExactMatchReward::check_example(const data::Example& ex) const {
  RLFT_CHECK(!normalise_answer(ex.reference, o_).empty(),
             "its reference answer is empty after normalisation (map one with data.jsonl.fields.answer)");
}

std::unique_ptr<RewardFn> make_exact_match_reward(const std::string& name, const ConfigView& section,
                                                  const RewardContext&) {
  return std::make_unique<ExactMatchReward>(name, read_options<ExactMatchOptions>(section));
}

}  // namespace rlft::reward
