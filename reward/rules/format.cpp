#include "reward/rules/format.h"

#include <fmt/format.h>

#include <cmath>

#include "core/config.h"
#include "core/error.h"
#include "reward/rules/answer.h"

namespace rlft::reward {
namespace {

std::size_t count(std::string_view s, std::string_view what) {
  std::size_t n = 0;
  for (std::size_t pos = s.find(what); pos != std::string_view::npos; pos = s.find(what, pos + what.size())) ++n;
  return n;
}

bool blank(std::string_view s) {
  return trim(s).empty();
}

RegexOptions regex_options(const FormatOptions& o) {
  RegexOptions r;
  r.case_insensitive = o.case_insensitive;
  return r;
}

}  // namespace

bool has_think_answer_format(std::string_view s, bool think_in_prompt, bool allow_trailing_text) {
  // Each tag exactly once (one more <think> when the prompt holds the opening tag).
  if (count(s, "<think>") != (think_in_prompt ? 0u : 1u) || count(s, "</think>") != 1 || count(s, "<answer>") != 1 ||
      count(s, "</answer>") != 1)
    return false;
  std::string_view rest = s;
  if (!think_in_prompt) {
    rest = trim(rest);
    if (rest.substr(0, 7) != "<think>") return false;
    rest.remove_prefix(7);
  }
  const std::size_t think_end = rest.find("</think>");
  if (blank(rest.substr(0, think_end))) return false;
  rest = trim(rest.substr(think_end + 8));
  if (rest.substr(0, 8) != "<answer>") return false;
  rest.remove_prefix(8);
  const std::size_t answer_end = rest.find("</answer>");
  if (blank(rest.substr(0, answer_end))) return false;
  return allow_trailing_text || blank(rest.substr(answer_end + 9));
}

FormatOptions FormatOptions::from_config(const ConfigView& c) {
  FormatOptions o;
  o.template_name = c.get<std::string>("template", o.template_name);
  o.pattern = c.get<std::string>("pattern", o.pattern);
  o.match = c.get<std::string>("match", o.match);
  o.case_insensitive = c.get<bool>("case_insensitive", o.case_insensitive);
  o.nonempty_groups = c.get<bool>("nonempty_groups", o.nonempty_groups);
  o.think_in_prompt = c.get<bool>("think_in_prompt", o.think_in_prompt);
  o.allow_trailing_text = c.get<bool>("allow_trailing_text", o.allow_trailing_text);
  o.score = c.get<double>("score", o.score);
  o.mismatch = c.get<double>("mismatch", o.mismatch);
  return o;
}

void FormatOptions::validate() const {
  RLFT_CHECK_OPTION(template_name.empty() || template_name == "think_answer", "template", template_name,
                    "must be think_answer (or unset)");
  if (template_name.empty() && pattern.empty())
    throw OptionError("", "", "set `template: think_answer` or a `pattern`");
  RLFT_CHECK_OPTION(template_name.empty() || pattern.empty(), "pattern", pattern,
                    "set `template` or `pattern`, not both");
  RLFT_CHECK_OPTION(match == "full" || match == "search", "match", match, "must be full or search");
  RLFT_CHECK_OPTION(std::isfinite(score), "score", score, "must be a finite number");
  RLFT_CHECK_OPTION(std::isfinite(mismatch), "mismatch", mismatch, "must be a finite number");
  if (!pattern.empty()) {
    std::string error;
    try {
      Regex r(pattern, regex_options(*this));
    } catch (const Error& e) {
      error = e.what();
    }
    RLFT_CHECK_OPTION(error.empty(), "pattern", pattern, "{}", error);
  }
}

FormatReward::FormatReward(std::string name, FormatOptions options)
    : RewardFn(std::move(name)), o_(std::move(options)) {
  if (!o_.pattern.empty()) regex_.emplace(o_.pattern, regex_options(o_));
}

bool FormatReward::matches(std::string_view completion) const {
  if (!regex_) return has_think_answer_format(completion, o_.think_in_prompt, o_.allow_trailing_text);
  const auto groups = regex_->match(completion, o_.match == "full");
  if (!groups) return false;
  if (o_.nonempty_groups)
    for (std::size_t g = 1; g < groups->size(); ++g)
      if ((*groups)[g] && blank(*(*groups)[g])) return false;
  return true;
}

std::vector<double> FormatReward::score(const ScoreBatch& batch) {
  std::vector<double> out(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) out[i] = matches(batch.completions[i]) ? o_.score : o_.mismatch;
  return out;
}

std::unique_ptr<RewardFn> make_format_reward(const std::string& name, const ConfigView& section, const RewardContext&) {
  return std::make_unique<FormatReward>(name, read_options<FormatOptions>(section));
}

}  // namespace rlft::reward
