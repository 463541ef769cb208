#pragma once
// The MoE feed-forward block: a router (module "gate"), E SwiGLU experts ("experts.{e}"),
// and optional shared experts — DeepSeek's "shared_experts" (always on) or Qwen2-MoE's
// "shared_expert" scaled by sigmoid("shared_expert_gate"(x)).
//
// Compute (no loop over tokens, no dense compute of all experts): the N·K (token, slot)
// assignments are sorted by expert, the tokens gathered into one [N·K, D] block in that
// order, each expert runs its three GEMMs on its contiguous slice, and the outputs are
// scaled by their gate weights and summed back per token (index_add). Padding tokens get
// no assignments at all. In inference, experts with at most kSmallGemmMaxRows rows (a decode
// step's) run their products through the few-rows kernel instead
// (policy/kernels/small_gemm.h), all such experts in two threaded passes.
//
// Legend: N tokens (B·T flattened), D model width, E routed experts, K per token,
// I expert width.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <optional>
#include <vector>

#include "policy/layers/linear.h"
#include "policy/layers/mlp.h"
#include "policy/layers/router.h"

namespace rlft::policy {

struct MoeOptions {
  int64_t hidden_size = 0;               ///< D
  int64_t expert_intermediate_size = 0;  ///< I (moe_intermediate_size)
  RouterOptions router;                  ///< E, K, scoring, normalisation, groups
  bool router_bias = false;              ///< e_score_correction_bias buffer [E] fp32 (DeepSeek-V3)
  /// Aux-loss-free balancing moves the router bias after each optimizer step (DeepSeek-V3
  /// with topk_method noaux_tc); needs router_bias.
  bool router_bias_balanced = false;
  /// Width of the shared expert MLP; 0 = none. DeepSeek: n_shared_experts · I; Qwen2-MoE:
  /// shared_expert_intermediate_size.
  int64_t shared_intermediate_size = 0;
  /// Qwen2-MoE style: module "shared_expert" gated by sigmoid(shared_expert_gate(x)).
  /// Otherwise DeepSeek style: module "shared_experts", ungated.
  bool shared_expert_gated = false;
};

/// The router: weight [E, D] ("gate.weight") and, with a bias, e_score_correction_bias [E]
/// (a buffer in fp32: changed by update_router_bias(), never by the optimizer).
class MoeGateImpl : public torch::nn::Module {
 public:
  MoeGateImpl(int64_t n_experts, int64_t hidden_size, bool with_bias, const at::TensorOptions& param_options);
  /// Router logits [N, E] in fp32 (the matmul runs in fp32 whatever the compute dtype).
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;                   ///< [E, D]
  at::Tensor e_score_correction_bias;  ///< [E] fp32, or undefined
};
TORCH_MODULE(MoeGate);

/// What one MoE forward gives back besides the hidden states.
struct MoeOutput {
  at::Tensor hidden;                        ///< [N, D]
  at::Tensor indices;                       ///< [N, K] int64 experts used
  at::Tensor scores;                        ///< [N, E] fp32 affinities (with gradient)
  at::Tensor load;                          ///< [E] int64 assignments over valid tokens
  std::optional<SwitchTerms> switch_terms;  ///< when asked
};

struct MoeInputs {
  at::Tensor valid;           ///< [N] bool, undefined = all tokens real
  at::Tensor replay;          ///< [N, K] experts to reuse, or undefined
  bool switch_terms = false;  ///< compute SwitchTerms for the HF aux loss
};

class MoeImpl : public torch::nn::Module {
 public:
  MoeImpl(const MoeOptions& options, const at::TensorOptions& param_options);
  /// x [N, D].
  MoeOutput forward(const at::Tensor& x, const MoeInputs& in);
  const MoeOptions& options() const { return options_; }
  /// Σ over experts of x·W (the grouped GEMMs) for given routing: [N, D].
  at::Tensor routed(const at::Tensor& x, const at::Tensor& indices, const at::Tensor& weights, const at::Tensor& valid);

  MoeGate gate{nullptr};
  torch::nn::ModuleList experts{nullptr};
  std::vector<Mlp> expert_list;        ///< the same modules as `experts`, typed
  Mlp shared{nullptr};                 ///< "shared_experts" or "shared_expert"
  Linear shared_expert_gate{nullptr};  ///< [1, D] (Qwen2-MoE)

 private:
  /// The experts on their rows: x_sorted [A, D] holds counts[e] rows for each expert e in
  /// order → [A, D], unweighted.
  at::Tensor experts_forward(const at::Tensor& x_sorted, const int64_t* counts);
  /// Whether some expert's projection has an active LoRA adapter: the few-rows paths read
  /// the base weights directly and are left for the modules' own forwards then.
  bool adapters_active() const;
  /// Whether experts_few_rows applies: some expert has at most kSmallGemmMaxRows rows and
  /// the kernel takes the tensors (fp32, CPU, contiguous, no gradient wanted).
  bool few_rows_path(const at::Tensor& x_sorted, const int64_t* counts) const;
  at::Tensor experts_few_rows(const at::Tensor& x_sorted, const int64_t* counts);
  /// Decode in inference (at most kSmallGemmMaxRows tokens, the kernel takes every tensor,
  /// no aux-loss terms): the same routing, then dispatch, expert products and the weighted
  /// combine as plain loops over the few tokens instead of a dozen ATen ops (sort, bincount,
  /// gathers, index_add), which at one token cost more than the products.
  bool few_tokens_path(const at::Tensor& x, const MoeInputs& in) const;
  MoeOutput forward_few_tokens(const at::Tensor& x, const MoeInputs& in);

  MoeOptions options_;
};
TORCH_MODULE(Moe);

}  // namespace rlft::policy
