#pragma once
// countdown: does the completion's equation reach the target with the given numbers?
//
// The equation is taken from the last <answer>…</answer> (extract: answer_tag), the last
// line (last_line) or the whole completion (full), and evaluated by the safe parser in
// data/tasks/countdown.h: integers, + - * / and parentheses only, no unary minus, bounded
// length and depth, exact rational arithmetic (no floating point: 8/3*3 is exactly 8).
// Each given number may be used at most once (exactly once with use_all, or when the
// example's meta says use_all); a number not given makes the equation invalid. With
// allow_equals a trailing "= <number>" is dropped before evaluation (the claim is ignored).
//
// The example must carry meta.numbers (a list of integers) and meta.target (an integer): the
// built-in countdown task does; a JSONL dataset maps them with data.jsonl.fields.meta.

#include <memory>
#include <string>
#include <vector>

#include "data/tasks/countdown.h"
#include "reward/reward.h"

namespace rlft::reward {

struct CountdownRewardOptions {
  std::string extract = "answer_tag";  ///< answer_tag | last_line | full
  double correct = 1.0;                ///< a valid equation that hits the target
  double wrong_value = 0.0;            ///< a valid equation (allowed numbers) that misses the target
  double invalid = 0.0;                ///< no equation, a parse error, a number not given or used twice
  bool use_all = false;                ///< every given number must be used
  bool integer_division = false;       ///< every division must come out even (the game's rule)
  bool allow_equals = true;            ///< accept "expression = number" (only the expression counts)
  bool reject_multiple = true;         ///< two or more <answer> blocks score `invalid`
  int64_t max_chars = 256;             ///< a longer equation is invalid (not parsed)
  int max_depth = 16;                  ///< deeper parenthesis nesting is invalid

  static CountdownRewardOptions from_config(const ConfigView& section);
  void validate() const;  ///< throws rlft::OptionError naming the field
};

enum class CountdownVerdict { kCorrect, kWrongValue, kInvalid };

/// Judges one completion for the numbers and target; `why` (when given) says what was wrong.
CountdownVerdict judge_countdown(std::string_view completion, const std::vector<int64_t>& numbers, int64_t target,
                                 bool use_all, const CountdownRewardOptions& options, std::string* why = nullptr);

class CountdownReward : public RewardFn {
 public:
  CountdownReward(std::string name, CountdownRewardOptions options);
  std::vector<double> score(const ScoreBatch& batch) override;
  void check_example(const data::Example& example) const override;

 private:
  CountdownRewardOptions o_;
};

std::unique_ptr<RewardFn> make_countdown_reward(const std::string& name, const ConfigView& section,
                                                const RewardContext& context);

}  // namespace rlft::reward
