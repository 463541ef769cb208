#include "rl/precision.h"

#include <ATen/autocast_mode.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/log.h"

namespace rlft::rl {

AutocastGuard::AutocastGuard(Compute compute, const at::Device& device) {
  if (compute == Compute::kFp32) return;
  const auto dtype = compute == Compute::kBf16 ? at::kBFloat16 : at::kHalf;
  if (device.is_cuda()) {
    cuda_ = true;
    prev_cuda_ = at::autocast::is_enabled();
    prev_cuda_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(true);
  } else {
    cpu_ = true;
    prev_cpu_ = at::autocast::is_cpu_enabled();
    prev_cpu_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(true);
  }
}

AutocastGuard::~AutocastGuard() {
  if (cuda_) {
    at::autocast::set_enabled(prev_cuda_);
    at::autocast::set_autocast_gpu_dtype(prev_cuda_dtype_);
  }
  if (cpu_) {
    at::autocast::set_cpu_enabled(prev_cpu_);
    at::autocast::set_autocast_cpu_dtype(prev_cpu_dtype_);
  }
  if (cuda_ || cpu_) at::autocast::clear_cache();
}

void check_precision(const PrecisionOptions& p, const at::Device& device) {
  if (p.compute == Compute::kFp16 && !device.is_cuda())
    throw ConfigError(
        "precision.compute = fp16: fp16 autocast needs a CUDA device (LibTorch's CPU autocast computes in bf16); "
        "use compute: bf16 on CPU");
}

}  // namespace rlft::rl
