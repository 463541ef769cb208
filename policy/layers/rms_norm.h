#pragma once
// RMSNorm as Hugging Face computes it: normalise in fp32, cast back to the input dtype, then
// scale: y = w * (x / sqrt(mean(x^2) + eps)).to(x.dtype). x [..., dim] -> [..., dim].

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace rlft::policy {

class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t dim, double eps, const at::TensorOptions& param_options);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;  ///< [dim], initialised to ones
  double eps() const { return eps_; }

 private:
  double eps_;
};
TORCH_MODULE(RmsNorm);

}  // namespace rlft::policy
