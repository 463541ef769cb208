#include "policy/layers/linear.h"

#include <ATen/ATen.h>

#include "policy/kernels/small_gemm.h"

namespace rlft::policy {

LinearImpl::LinearImpl(const LinearOptions& options, const at::TensorOptions& param_options) : options_(options) {
  weight = register_parameter("weight", at::empty({options.out_features, options.in_features}, param_options));
  if (options.bias) bias = register_parameter("bias", at::empty({options.out_features}, param_options));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  return policy::linear(x, weight, bias);
}

EmbeddingImpl::EmbeddingImpl(int64_t n_rows, int64_t dim, const at::TensorOptions& param_options) {
  weight = register_parameter("weight", at::empty({n_rows, dim}, param_options));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) {
  return at::embedding(weight, ids);
}

}  // namespace rlft::policy
