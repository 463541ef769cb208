#include "policy/layers/rms_norm.h"

#include <ATen/ATen.h>

namespace rlft::policy {

RmsNormImpl::RmsNormImpl(int64_t dim, double eps, const at::TensorOptions& param_options) : eps_(eps) {
  weight = register_parameter("weight", at::ones({dim}, param_options));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  const auto x32 = x.to(at::kFloat);
  const auto y = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return weight * y.to(x.scalar_type());
}

}  // namespace rlft::policy
