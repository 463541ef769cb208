#pragma once
// The two plain weight modules: Linear (y = x W^T + b) and Embedding (a row lookup).
// Parameters are allocated uninitialised in the given dtype/device and filled by the
// model's seeded init or by a checkpoint load — never by LibTorch's global RNG.
//
// Shapes: W [out, in] (PyTorch / Hugging Face convention), b [out]; x [..., in] -> [..., out].

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace rlft::policy {

struct LinearOptions {
  int64_t in_features = 0;   ///< input width
  int64_t out_features = 0;  ///< output width
  bool bias = false;         ///< registers "bias" [out]
};

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(const LinearOptions& options, const at::TensorOptions& param_options);
  torch::Tensor forward(const torch::Tensor& x);  ///< [..., in] -> [..., out]
  torch::Tensor weight;                           ///< [out, in]
  torch::Tensor bias;                             ///< [out] or undefined
  const LinearOptions& options() const { return options_; }

 private:
  LinearOptions options_;
};
TORCH_MODULE(Linear);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t n_rows, int64_t dim, const at::TensorOptions& param_options);
  torch::Tensor forward(const torch::Tensor& ids);  ///< [...] int64 -> [..., dim]
  torch::Tensor weight;                             ///< [n_rows, dim]
};
TORCH_MODULE(Embedding);

}  // namespace rlft::policy
