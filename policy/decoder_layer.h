#pragma once
// One pre-norm decoder layer, as every architecture here has it:
//   x = x + self_attn(input_layernorm(x));  x = x + mlp(post_attention_layernorm(x))
// with self_attn GQA or MLA and mlp a dense SwiGLU or an MoE block, as its LayerPlan says.
// Module names are the Hugging Face ones, so named_parameters() are checkpoint names.
//
// Legend: B rows, T tokens, D model width, N = B·T, K experts per token, E experts.

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <optional>

#include "policy/layers/attention.h"
#include "policy/layers/mla.h"
#include "policy/layers/mlp.h"
#include "policy/layers/moe.h"
#include "policy/layers/rms_norm.h"

namespace rlft::policy {

/// What decoder layer `i` is made of (an architecture's `plan` hook builds it).
struct LayerPlan {
  enum class Attention { kGqa, kMla };
  enum class FeedForward { kDense, kMoe };
  int64_t hidden_size = 0;     ///< D
  double rms_norm_eps = 1e-6;  ///< input_layernorm, post_attention_layernorm
  Attention attention = Attention::kGqa;
  AttentionOptions gqa;  ///< when kGqa
  MlaOptions mla;        ///< when kMla
  FeedForward ffn = FeedForward::kDense;
  MlpOptions mlp;  ///< when kDense
  MoeOptions moe;  ///< when kMoe
};

struct LayerInputs {
  AttentionInputs attention;
  at::Tensor valid;           ///< [N] bool
  at::Tensor replay;          ///< [N, K] experts to reuse, or undefined
  bool switch_terms = false;  ///< MoE: compute the HF aux-loss terms
};

struct LayerOutput {
  at::Tensor hidden;             ///< [B, T, D]
  std::optional<MoeOutput> moe;  ///< MoE layers only
};

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const LayerPlan& plan, const at::TensorOptions& param_options);
  /// x [B, T, D].
  LayerOutput forward(const at::Tensor& x, const LayerInputs& in);
  bool is_moe() const { return static_cast<bool>(moe); }
  const LayerPlan& plan() const { return plan_; }

  RmsNorm input_layernorm{nullptr};           // [D]
  RmsNorm post_attention_layernorm{nullptr};  // [D]
  Attention gqa{nullptr};                     ///< registered as "self_attn"
  Mla mla{nullptr};                           ///< registered as "self_attn"
  Mlp mlp{nullptr};                           ///< registered as "mlp"
  Moe moe{nullptr};                           ///< registered as "mlp"

 private:
  LayerPlan plan_;
};
TORCH_MODULE(DecoderLayer);

}  // namespace rlft::policy
