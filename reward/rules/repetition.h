#pragma once
// repetition: an n-gram repetition penalty (as in "Demystifying Long Chain-of-Thought
// Reasoning", arXiv 2502.03373):
//     R = penalty · (1 - distinct n-grams / all n-grams)        in [penalty, 0]
// A completion with fewer than n units has no n-grams and scores 0. It is a penalty only:
// an empty completion scores 0 here, so pair it with a reward for being right.
//
// unit: words (split on whitespace), chars (UTF-8 code points) or tokens (the batch's
// completion token ids; a batch without them is an error).

#include <memory>
#include <string>
#include <vector>

#include "reward/reward.h"

namespace rlft::reward {

struct RepetitionOptions {
  int n = 3;                    ///< n-gram size, in [1, 64]
  std::string unit = "words";   ///< words | chars | tokens
  bool case_sensitive = false;  ///< words and chars: false compares ASCII letters case-blind
  double penalty = -1.0;        ///< the score when every n-gram repeats; <= 0

  static RepetitionOptions from_config(const ConfigView& section);
  void validate() const;  ///< throws rlft::OptionError naming the field
};

/// 1 - distinct/total over the n-grams of `units` (0 when there are none).
double repeated_fraction(const std::vector<std::string>& units, int n);
double repeated_fraction(const std::vector<int64_t>& units, int n);
/// The units of a text for `unit` = words or chars.
std::vector<std::string> split_units(std::string_view text, const RepetitionOptions& options);

class RepetitionReward : public RewardFn {
 public:
  RepetitionReward(std::string name, RepetitionOptions options);
  std::vector<double> score(const ScoreBatch& batch) override;

 private:
  RepetitionOptions o_;
};

std::unique_ptr<RewardFn> make_repetition_reward(const std::string& name, const ConfigView& section,
                                                 const RewardContext& context);

}  // namespace rlft::reward
