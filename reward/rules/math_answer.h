#pragma once
// math_answer: is the completion's final answer equal, by value, to the reference?
//
// The answer is found by the first strategy (in the configured order) that finds one:
//   boxed        the last \boxed{…}
//   answer_tag   the last <answer>…</answer>
//   hash         the last "#### …" line (GSM8K)
//   last_number  the last number anywhere in the completion
// and then read as a number (answer.h: integers, decimals, fractions, \frac, thousands
// separators, negatives). The first strategy that finds an answer decides: an unreadable
// \boxed{x+1} is wrong, never rescued by a number further on. With reject_multiple, two
// different answers of that strategy (\boxed{3} … \boxed{4}) score as wrong: hedging never
// pays. Inside <answer> and after ####, text with more than one number is wrong too.
//
// The reference is read as a number, or else with the same strategies (a GSM8K solution
// ending in "#### 72" works as it is).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reward/reward.h"
#include "reward/rules/answer.h"

namespace rlft::reward {

struct MathAnswerOptions {
  std::vector<std::string> strategies = {"boxed", "answer_tag", "hash", "last_number"};  ///< tried in order
  bool reject_multiple = true;  ///< two different answers of the deciding strategy score `incorrect`
  double tolerance = 1e-9;      ///< relative tolerance where a value is not exact (very long numbers)
  double correct = 1.0;         ///< score of a correct answer
  double incorrect = 0.0;       ///< score of a wrong or unreadable answer
  double no_answer = 0.0;       ///< score when no strategy finds an answer

  static MathAnswerOptions from_config(const ConfigView& section);
  void validate() const;  ///< throws rlft::OptionError naming the field
};

/// How one completion was judged (for tests and debugging).
enum class MathVerdict { kCorrect, kIncorrect, kNoAnswer };

/// The answer the strategies find in `text`: nullopt = none found; a found answer that
/// does not read as one number (or hedges) gives a MathValue-less result.
struct FoundAnswer {
  std::string strategy;            ///< the strategy that found it
  std::optional<MathValue> value;  ///< nullopt: found but unreadable or ambiguous
};
std::optional<FoundAnswer> find_math_answer(std::string_view text, const MathAnswerOptions& options);

/// The reference's value: parsed directly, else found with the strategies; nullopt when
/// neither works.
std::optional<MathValue> reference_value(const std::string& reference, const MathAnswerOptions& options);

MathVerdict judge_math_answer(std::string_view completion, const MathValue& reference,
                              const MathAnswerOptions& options);

class MathAnswerReward : public RewardFn {
 public:
  MathAnswerReward(std::string name, MathAnswerOptions options);
  std::vector<double> score(const ScoreBatch& batch) override;
  void check_example(const data::Example& example) const override;

 private:
  MathAnswerOptions o_;
};

std::unique_ptr<RewardFn> make_math_answer_reward(const std::string& name, const ConfigView& section,
                                                  const RewardContext& context);

}  // namespace rlft::reward
