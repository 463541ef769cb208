#pragma once
// Group-relative advantages: pure functions on rewards [P, G] (P prompts, G completions each).
//
//   grpo          A = (r − mean_group(r)) / (std_group(r) + eps)          DeepSeekMath §4.1.2
//   dr_grpo       A = r − mean_group(r)                                   Dr. GRPO (no std)
//   rloo          A = r_i − mean_{j≠i}(r_j) = G/(G−1) · (r − mean_group)   RLOO (Ahmadian et al. 2024)
//   reinforce_pp  A = r − mean_group(r), then whitened over the batch's tokens   REINFORCE++-baseline
//
// `scale` says what the baseline-subtracted values are divided by (each estimator has its
// paper's default: grpo group; dr_grpo, rloo none; reinforce_pp whiten_tokens):
//   group          the group's standard deviation of the rewards (DeepSeekMath; TRL's
//                  scale_rewards="group")
//   batch          the standard deviation of the raw rewards over the whole batch (TRL's
//                  scale_rewards="batch"; no re-centring)
//   whiten         the centred values whitened over the batch's sequences: minus their mean,
//                  over their standard deviation
//   whiten_tokens  the same over the batch's tokens: each sequence counts once per completion
//                  token, as REINFORCE++ (Hu 2025, §3) and OpenRLHF whiten the per-token advantages
//   none           nothing
// Standard deviations are unbiased (N − 1), as the reference implementations compute them.
// A group whose rewards are all equal carries no signal: its advantages are exactly 0.

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <vector>

namespace rlft {
class ConfigView;
}

namespace rlft::rl {

enum class AdvantageScale { kGroup, kBatch, kWhiten, kWhitenTokens, kNone };

struct AdvantageOptions {
  std::string estimator = "grpo";       ///< grpo | dr_grpo | rloo | reinforce_pp
  std::optional<AdvantageScale> scale;  ///< see the top of this file; unset (YAML `default`) = the estimator's default
  double eps = 1e-6;                    ///< added to a standard deviation before dividing (> 0)
  /// Reads an `advantage:` section (every key optional); an unknown scale is a ConfigError.
  static AdvantageOptions from_config(const ConfigView& section);
  /// Throws rlft::OptionError for an unknown estimator (listing the known ones) or eps <= 0.
  void validate() const;
};

/// "group" | "batch" | "whiten" | "whiten_tokens" | "none" → AdvantageScale; throws
/// rlft::Error listing the known names.
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
/// tokens: [P, G] completion tokens counted in the loss (whiten_tokens needs it; an error
/// naming the scale when absent).
Advantages compute_advantages(const at::Tensor& rewards, const AdvantageOptions& options,
                              const at::Tensor& tokens = {});

}  // namespace rlft::rl
