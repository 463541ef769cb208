#pragma once
// Group-relative advantages: pure functions on rewards [P, G] (P prompts, G completions each).
//
//   grpo          A = (r − mean_group(r)) / (std_group(r) + eps)          DeepSeekMath §4.1.2
//   dr_grpo       A = r − mean_group(r)                                   Dr. GRPO (no std)
//   rloo          A = r_i − mean_{j≠i}(r_j) = G/(G−1) · (r − mean_group)   RLOO (Ahmadian et al. 2024)
//   reinforce_pp  A = r − mean_group(r), then normalised over the batch   REINFORCE++-baseline
//
// `scale` says what the baseline-subtracted values are divided by: `group` — the group's
// standard deviation of the rewards; `batch` — the standard deviation of the advantages over
// the whole batch (REINFORCE++'s global normalisation); `none` — nothing. Each estimator has
// its paper's default (grpo: group; dr_grpo, rloo: none; reinforce_pp: batch). Standard
// deviations are unbiased (N − 1), as the reference implementations compute them.
// A group whose rewards are all equal carries no signal: its advantages are exactly 0.

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <vector>

namespace rlft {
class ConfigView;
}

namespace rlft::rl {

enum class AdvantageScale { kGroup, kBatch, kNone };

struct AdvantageOptions {
  std::string estimator = "grpo";       ///< grpo | dr_grpo | rloo | reinforce_pp
  std::optional<AdvantageScale> scale;  ///< group | batch | none; unset (YAML `default`) = the estimator's default
  double eps = 1e-6;                    ///< added to a standard deviation before dividing (> 0)
  /// Reads an `advantage:` section (every key optional); an unknown scale is a ConfigError.
  static AdvantageOptions from_config(const ConfigView& section);
  /// Throws rlft::OptionError for an unknown estimator (listing the known ones) or eps <= 0.
  void validate() const;
};

/// "group" | "batch" | "none" → AdvantageScale; throws rlft::Error listing the known names.
AdvantageScale parse_advantage_scale(const std::string& name);
/// The inverse of parse_advantage_scale.
const char* advantage_scale_name(AdvantageScale scale);
/// The estimators this build knows, sorted.
std::vector<std::string> advantage_estimators();

struct Advantages {
  at::Tensor values;         ///< [P, G] float32
  at::Tensor zero_variance;  ///< [P] bool: the group's rewards were all equal
  int64_t n_zero_variance = 0;
};

/// rewards: [P, G] with G >= 2, any floating dtype (computed in float64, returned float32).
Advantages compute_advantages(const at::Tensor& rewards, const AdvantageOptions& options);

}  // namespace rlft::rl
