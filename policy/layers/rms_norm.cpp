#include "policy/layers/rms_norm.h"

#include <ATen/ATen.h>

#include <cmath>

#include "policy/kernels/small_gemm.h"

namespace rlft::policy {

RmsNormImpl::RmsNormImpl(int64_t dim, double eps, const at::TensorOptions& param_options) : eps_(eps) {
  weight = register_parameter("weight", at::ones({dim}, param_options));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  // Inference in fp32 on the CPU: one pass per row instead of six ops.
  if (x.is_contiguous() && small_gemm_takes_operand(x) && small_gemm_takes_operand(weight) && x.dim() >= 1 &&
      x.size(-1) == weight.size(0) && weight.is_contiguous()) {
    const int64_t D = x.size(-1), rows = D > 0 ? x.numel() / D : 0;
    auto y = at::empty_like(x, at::MemoryFormat::Contiguous);
    const float* in = x.data_ptr<float>();
    const float* w = weight.data_ptr<float>();
    float* out = y.data_ptr<float>();
    const float eps = static_cast<float>(eps_);
    // One thread: this file is not built with OpenMP, so at::parallel_for would be serial too.
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = in + r * D;
      float ss = 0.0f;
      for (int64_t d = 0; d < D; ++d) ss += xr[d] * xr[d];
      const float inv = 1.0f / std::sqrt(ss / static_cast<float>(D) + eps);
      for (int64_t d = 0; d < D; ++d) out[r * D + d] = w[d] * (xr[d] * inv);
    }
    return y;
  }
  const auto x32 = x.to(at::kFloat);
  const auto y = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return weight * y.to(x.scalar_type());
}

}  // namespace rlft::policy
