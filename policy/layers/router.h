#pragma once
// MoE routing as pure functions: expert selection, gate weights, routing replay, and the
// load-balancing terms. The MoE layer (moe.h) calls them; tests check them on hand-worked
// values.
//
// Legend: N tokens, E routed experts, K experts per token, G expert groups.

#include <ATen/ATen.h>

#include <string>

namespace rlft::policy {

struct RouterOptions {
  int64_t n_experts = 0;  ///< E
  int64_t top_k = 0;      ///< K
  /// "softmax" (Qwen, Mixtral: softmax over all E, then top-K) or "sigmoid" (DeepSeek-V3:
  /// independent affinities s = σ(logit)).
  std::string scoring = "softmax";
  bool norm_topk_prob = false;         ///< divide the K weights by their sum (+1e-20)
  double routed_scaling_factor = 1.0;  ///< multiply the weights after normalisation
  int64_t n_group = 1;                 ///< G; 1 = no group limit
  int64_t topk_group = 1;              ///< groups a token may use
  /// Group score: "top2_sum" (DeepSeek-V3 noaux_tc: the sum of a group's two best biased
  /// scores) or "max" (DeepSeek-V2 group_limited_greedy).
  std::string group_score = "top2_sum";
  void validate() const;  ///< throws rlft::Error naming the field
};

struct RoutingResult {
  at::Tensor scores;   ///< [N, E] fp32 affinities (softmax or sigmoid), with gradient
  at::Tensor indices;  ///< [N, K] int64 chosen experts (by descending selection score)
  at::Tensor weights;  ///< [N, K] fp32 gate weights, with gradient to the router logits
};

/// Routes tokens given router logits [N, E] (fp32). `bias` [E] (DeepSeek's
/// e_score_correction_bias, or undefined) shifts the scores used for *selection* only —
/// group choice and top-K — never the gate weights ([V3] eq. 16). Non-kept groups are
/// excluded with -inf (DeepSeek's reference code; transformers fills 0.0, which can differ
/// only when a biased score is negative). `replay` [N, K] (or undefined) skips selection
/// and uses those experts; weights are recomputed from the current scores, so gradients
/// reach the router exactly as in the recorded forward.
RoutingResult route(const at::Tensor& logits, const at::Tensor& bias, const RouterOptions& options,
                    const at::Tensor& replay = {});

/// Assignments per expert [E] int64 over the tokens where `valid` [N] (bool, or undefined
/// = all) holds: Σ_t Σ_k 1(indices[t,k] = e).
at::Tensor expert_load(const at::Tensor& indices, const at::Tensor& valid, int64_t n_experts);

/// The two factors of the Switch / Hugging Face load-balancing loss for one layer
/// (load_balancing_loss_func of transformers' Mixtral/Qwen-MoE): over valid tokens,
/// f [K, E] = mean of one_hot(top-K of softmax(logits)) per slot (no gradient), and
/// P [E] = mean softmax(logits). Over L layers the loss is E · Σ (mean_l f) · (mean_l P),
/// see switch_aux_loss().
struct SwitchTerms {
  at::Tensor f;  ///< [K, E]
  at::Tensor p;  ///< [E]
};
SwitchTerms switch_terms(const at::Tensor& logits, const at::Tensor& valid, int64_t top_k);
/// E · Σ_{k,e} f̄[k,e]·P̄[e] with f̄, P̄ the means over layers (all layers see the same
/// tokens, so this equals transformers' loss over the concatenated router logits).
at::Tensor switch_aux_loss(const std::vector<SwitchTerms>& layers);

/// DeepSeek-V3 complementary sequence-wise balance loss ([V3] eqs. 17-20), unscaled by α:
/// per sequence b with T_b valid tokens, f_i = E / (K·T_b) · Σ_t 1(i chosen at t),
/// P_i = (1/T_b) Σ_t s_{i,t} / Σ_j s_{j,t}, L_b = Σ_i f_i·P_i; returns the mean of L_b
/// over sequences with T_b > 0. scores [B, T, E], indices [B, T, K], valid [B, T].
at::Tensor sequence_balance_loss(const at::Tensor& scores, const at::Tensor& indices, const at::Tensor& valid);

/// Auxiliary-loss-free balancing ([V3] §2.1.2): b_e += γ · sign(mean(load) − load_e), in
/// place, without gradient. `load` [E] counts over the step's whole batch (all ranks).
void update_router_bias_tensor(at::Tensor& bias, const at::Tensor& load, double gamma);

}  // namespace rlft::policy
