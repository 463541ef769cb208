#pragma once
// Policy losses: pure functions on per-token log-probabilities. Shapes: N sequences
// (completions), T completion positions (right-padded; `mask` marks real tokens).
//
//   ratio      ρ_t = exp(logp_t − old_logp_t)                      (token level, PPO/GRPO)
//              s_i = exp(mean_t(logp − old_logp)) per sequence     (sequence level, GSPO §2.3,
//                    applied per token as sg[s_i]·exp(logp_t − sg[logp_t]), the GSPO-token form)
//   surrogate  l_t = −min(ρ A, clip(ρ, 1 − clip_low, 1 + clip_high) A)   (clip-higher: DAPO §3.1)
//              dual clip (A < 0): l_t = min(l_t, −dual_clip·A)            (Ye et al. 2020)
//   KL         x = ref_logp − logp;  k1 = −x,  k2 = x²/2,  k3 = eˣ − x − 1   (Schulman 2020;
//              GRPO uses k3 in the loss, DeepSeekMath eq. 4)
//   total      agg(l + β·KL) − entropy_coef · agg(H)
//   agg        token_mean               Σ l / Σ mask                          (DAPO eq. 12)
//              seq_mean_token_mean      mean_i (Σ_t l / |o_i|)                (GRPO eq. 3)
//              seq_mean_token_sum_norm  mean_i (Σ_t l / L),  L = norm_tokens  (Dr. GRPO)
// The loss is computed in float32 whatever the dtype of the inputs.

#include <ATen/ATen.h>

#include <optional>
#include <string>

namespace rlft {
class ConfigView;
}

namespace rlft::rl {

enum class KlEstimator { kK1, kK2, kK3 };
enum class LossAggregation { kTokenMean, kSeqMeanTokenMean, kSeqMeanTokenSumNorm };
enum class RatioLevel { kToken, kSequence };

KlEstimator parse_kl_estimator(const std::string& name);          ///< "k1" | "k2" | "k3"
LossAggregation parse_loss_aggregation(const std::string& name);  ///< see the legend above
RatioLevel parse_ratio_level(const std::string& name);            ///< "token" | "sequence"
const char* kl_estimator_name(KlEstimator estimator);             ///< the inverse of parse_kl_estimator
const char* loss_aggregation_name(LossAggregation aggregation);   ///< the inverse of parse_loss_aggregation
const char* ratio_level_name(RatioLevel level);                   ///< the inverse of parse_ratio_level

/// Per-token KL estimate of KL(π_θ ‖ π_ref) from samples of π_θ. [N, T] → [N, T].
at::Tensor kl_estimate(const at::Tensor& logp, const at::Tensor& ref_logp, KlEstimator estimator);

/// Aggregates per-token values [N, T] under `mask` [N, T] to a scalar.
at::Tensor aggregate(const at::Tensor& values, const at::Tensor& mask, LossAggregation agg, double norm_tokens);

struct LossOptions {
  double clip_low = 0.2;                        ///< ε_low, in (0, 1): the ratio may fall to 1 − ε_low
  double clip_high = 0.2;                       ///< ε_high (> 0): the ratio may rise to 1 + ε_high (DAPO: 0.28)
  std::optional<double> dual_clip;              ///< c > 1: bound on the loss of negative-advantage tokens; unset = off
  RatioLevel ratio_level = RatioLevel::kToken;  ///< token (PPO/GRPO) or sequence (GSPO) ratios
  LossAggregation aggregation = LossAggregation::kSeqMeanTokenMean;  ///< see the legend above
  double norm_tokens = 1024;                    ///< L for seq_mean_token_sum_norm (> 0; the max completion length)
  double kl_beta = 0.0;                         ///< β of the KL term in the loss (>= 0; 0 = no KL term)
  KlEstimator kl_estimator = KlEstimator::kK3;  ///< k1 | k2 | k3 (see the legend)
  double entropy_coef = 0.0;                    ///< bonus weight on the mean token entropy (>= 0)
  /// Truncated importance sampling (`loss.behaviour_is_cap`): each token's loss times
  /// min(π_old / π_behaviour, cap), where the behaviour log-probs are rollout's and old_logp
  /// the trainer's recomputation (recompute_old_logp; without it the weight is 1); 0 = off.
  double behaviour_is_cap = 0.0;
  /// Reads a `loss:` section (every key optional) over `fallback`, whose fields are the
  /// defaults (GRPO's norm_tokens is its max_new_tokens). `dual_clip: 0` means off. Unknown
  /// names of ratio_level, aggregation and kl_estimator are ConfigErrors at their key.
  static LossOptions from_config(const ConfigView& section, const LossOptions& fallback);
  /// Throws rlft::OptionError naming the field for an invalid value.
  void validate() const;
};

struct LossInputs {
  at::Tensor logp;            ///< [N, T] log π_θ of the sampled tokens (carries grad)
  at::Tensor old_logp;        ///< [N, T] log π_old (the policy that sampled, or the trainer's recomputation)
  at::Tensor advantages;      ///< [N] per sequence, or [N, T] per token
  at::Tensor mask;            ///< [N, T] 1 for tokens that count, 0 for padding / masked (truncated) ones
  at::Tensor ref_logp;        ///< [N, T] log π_ref; undefined when kl_beta = 0
  at::Tensor entropy;         ///< [N, T] token entropies; undefined when entropy_coef = 0
  at::Tensor behaviour_logp;  ///< [N, T] rollout-engine log-probs; undefined unless behaviour_is_cap > 0
};

struct LossOutput {
  at::Tensor loss;             ///< scalar, differentiable: what backward() is called on
  double policy_loss = 0.0;    ///< the aggregated surrogate alone
  double kl = 0.0;             ///< mean per-token KL estimate (0 without a reference)
  double entropy = 0.0;        ///< mean token entropy (0 when not given)
  double clip_fraction = 0.0;  ///< share of tokens whose ratio was clipped (gradient stopped)
  double ratio_mean = 0.0;     ///< mean ratio over tokens
  double approx_kl_old = 0.0;  ///< mean k3 estimate of KL(π_θ ‖ π_old): how far this update moved
  /// Share of tokens whose importance weight π_old / π_behaviour exceeded behaviour_is_cap
  /// (0 when the cap is off).
  double is_capped_fraction = 0.0;
};

LossOutput policy_loss(const LossInputs& in, const LossOptions& options);

}  // namespace rlft::rl
