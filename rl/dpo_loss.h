#pragma once
// The DPO family of preference losses, on one pair's summed reply log-probs (Legend: B pairs).
//
// With h_c = log π(y_c|x) − log π_ref(y_c|x), h_r the same for the rejected reply:
//   sigmoid (DPO, Rafailov et al. 2023, eq. 7):  −log σ(β (h_c − h_r))
//     with label_smoothing ε (cDPO, Mitchell 2023): −(1 − ε) log σ(β Δ) − ε log σ(−β Δ)
//   ipo (Azar et al. 2023, eq. 17):              (Δ − 1 / (2β))², where the log-probs are
//     divided by the reply's token count first (as TRL computes IPO)
//   simpo (Meng et al. 2024, eq. 6; no reference): −log σ(β (ℓ_c − ℓ_r) − γ), ℓ = log π(y|x) / |y|
//     (label smoothing as for sigmoid)
// The implicit rewards are β h (β ℓ for SimPO); accuracy = share of pairs whose chosen reward
// is larger. rl/dpo_trainer.h adds the SFT term (RPO, Pang et al. 2024).

#include <ATen/ATen.h>

#include <optional>
#include <string>

namespace rlft {
class ConfigView;
}

namespace rlft::rl {

enum class DpoLoss { kSigmoid, kIpo, kSimpo };

DpoLoss parse_dpo_loss(const std::string& name);  ///< throws Error listing the known ones
const char* dpo_loss_name(DpoLoss loss);

/// The `dpo:` keys of the loss itself.
struct DpoLossOptions {
  DpoLoss type = DpoLoss::kSigmoid;  ///< `loss`
  /// β (> 0); unset = the loss's usual value: 0.1 for sigmoid and ipo (DPO's, TRL's), 2.0
  /// for simpo (SimPO's recommended 2.0–2.5).
  std::optional<double> beta;
  double label_smoothing = 0.0;  ///< ε in [0, 0.5): sigmoid (cDPO) and simpo
  double simpo_gamma = 1.0;      ///< SimPO's target margin γ (>= 0; γ/β = 0.5 at β = 2, the paper's advice)

  double beta_value() const { return beta.value_or(type == DpoLoss::kSimpo ? 2.0 : 0.1); }
  bool uses_reference() const { return type != DpoLoss::kSimpo; }
  /// Whether the log-probs are divided by the reply's token count (ipo, simpo).
  bool length_normalised() const { return type != DpoLoss::kSigmoid; }
  static DpoLossOptions from_config(const ConfigView& section);
  void validate() const;
};

struct DpoLossInput {
  at::Tensor chosen_logp, rejected_logp;          ///< [B] Σ log π over each reply's tokens
  at::Tensor ref_chosen_logp, ref_rejected_logp;  ///< [B] the same under π_ref (unused by simpo)
  at::Tensor chosen_tokens, rejected_tokens;      ///< [B] the replies' token counts (float)
};

struct DpoLossOutput {
  at::Tensor loss;                              ///< [B] each pair's loss (differentiable)
  at::Tensor chosen_rewards, rejected_rewards;  ///< [B] implicit rewards (detached)
};

DpoLossOutput dpo_loss(const DpoLossInput& input, const DpoLossOptions& options);

}  // namespace rlft::rl
