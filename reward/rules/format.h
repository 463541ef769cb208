#pragma once
// format: does the completion have the required shape?
//
// template: think_answer — exactly `<think>R</think> <answer>A</answer>` (whitespace around
//   the blocks allowed), each tag exactly once and in that order, R and A not blank. With
//   think_in_prompt the prompt already ends in "<think>" and the completion starts inside R.
//   An empty <answer></answer> (or <think></think>) never scores: that is the known hack.
// pattern — a PCRE2 regular expression that must match the whole completion (match: full)
//   or somewhere in it (match: search); with nonempty_groups every capture group that took
//   part in the match must hold non-whitespace text.

#include <memory>
#include <optional>
#include <string>

#include "reward/regex.h"
#include "reward/reward.h"

namespace rlft::reward {

struct FormatOptions {
  std::string template_name;         ///< "" | think_answer (YAML key `template`)
  std::string pattern;               ///< a PCRE2 pattern ("" = none); one of template and pattern
  std::string match = "full";        ///< full | search (pattern only)
  bool case_insensitive = false;     ///< pattern only
  bool nonempty_groups = true;       ///< pattern only: participating capture groups must hold non-blank text
  bool think_in_prompt = false;      ///< think_answer: the prompt ends in <think>, the completion starts inside it
  bool allow_trailing_text = false;  ///< think_answer: text after </answer> is allowed
  double score = 1.0;                ///< score of a completion with the format
  double mismatch = 0.0;             ///< score otherwise

  static FormatOptions from_config(const ConfigView& section);
  /// Also compiles `pattern`; throws rlft::OptionError naming the field.
  void validate() const;
};

/// The think_answer check on its own.
bool has_think_answer_format(std::string_view completion, bool think_in_prompt, bool allow_trailing_text);

class FormatReward : public RewardFn {
 public:
  /// Throws rlft::Error when the pattern does not compile.
  FormatReward(std::string name, FormatOptions options);
  std::vector<double> score(const ScoreBatch& batch) override;
  bool matches(std::string_view completion) const;

 private:
  FormatOptions o_;
  std::optional<Regex> regex_;
};

std::unique_ptr<RewardFn> make_format_reward(const std::string& name, const ConfigView& section,
                                             const RewardContext& context);

}  // namespace rlft::reward
