#pragma once
// The SwiGLU feed-forward block of every architecture here, and of every expert:
// down_proj(silu(gate_proj(x)) * up_proj(x)). x [..., D] -> [..., D].

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "policy/layers/linear.h"

namespace rlft::policy {

struct MlpOptions {
  int64_t hidden_size = 0;        ///< D
  int64_t intermediate_size = 0;  ///< I
  bool bias = false;              ///< Llama's mlp_bias
};

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(const MlpOptions& options, const at::TensorOptions& param_options);
  at::Tensor forward(const at::Tensor& x);
  Linear gate_proj{nullptr};  // [I, D]
  Linear up_proj{nullptr};    // [I, D]
  Linear down_proj{nullptr};  // [D, I]
};
TORCH_MODULE(Mlp);

}  // namespace rlft::policy
