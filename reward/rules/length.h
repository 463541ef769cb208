#pragma once
// length: shaping by completion length L, a score in [-1, 0].
//
// mode: overlong — DAPO's soft overlong punishment (arXiv 2503.14476 eq. 13; algorithms.md
// §2.1), with L_max = max_length and L_cache = cache_length:
//     R(L) = 0                               L <= L_max - L_cache
//          = ((L_max - L_cache) - L) / L_cache   L_max - L_cache < L <= L_max
//          = -1                              L > L_max
// mode: target — a penalty for missing a target length:
//     R(L) = -min(1, max(0, d - tolerance) / scale),   d = |L - target_length|
//   (d counts only L > target with direction: longer, only L < target with shorter).
//
// unit: tokens reads the batch's completion token counts (a batch without them is an
// error); unit: chars counts UTF-8 code points.

#include <memory>
#include <string>

#include "reward/reward.h"

namespace rlft::reward {

struct LengthOptions {
  std::string mode = "overlong";   ///< overlong | target
  std::string unit = "tokens";     ///< tokens | chars
  int64_t max_length = 4096;       ///< overlong: L_max (usually the generation limit)
  int64_t cache_length = 1024;     ///< overlong: L_cache, the soft band below L_max, in [1, max_length]
  int64_t target_length = 256;     ///< target: the length aimed at
  int64_t tolerance = 0;           ///< target: no penalty within ± this many units
  int64_t scale = 256;             ///< target: units beyond the tolerance at which the penalty reaches -1
  std::string direction = "both";  ///< target: both | longer (penalise only too long) | shorter

  static LengthOptions from_config(const ConfigView& section);
  void validate() const;  ///< throws rlft::OptionError naming the field
};

/// DAPO eq. 13.
double soft_overlong_penalty(int64_t length, int64_t max_length, int64_t cache_length);
/// The target-mode penalty.
double target_length_penalty(int64_t length, const LengthOptions& options);
/// UTF-8 code points in `text` (a stray byte counts as one).
int64_t count_chars(std::string_view text);

class LengthReward : public RewardFn {
 public:
  LengthReward(std::string name, LengthOptions options);
  std::vector<double> score(const ScoreBatch& batch) override;

 private:
  LengthOptions o_;
};

std::unique_ptr<RewardFn> make_length_reward(const std::string& name, const ConfigView& section,
                                             const RewardContext& context);

}  // namespace rlft::reward
