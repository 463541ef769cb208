#pragma once
// Mixed precision for training: fp32 master weights and optimizer state always; the forward
// computes in fp32, or in bf16/fp16 under autocast (LibTorch's per-op casting: matrix
// products in the low dtype, reductions and softmax in fp32). The router, the vocabulary
// log-softmax and the losses stay fp32 (the model casts them; see policy/layers/moe.cpp).
// fp16 adds dynamic loss scaling (rl/loss_scale.h, applied by rl/optimizer_step.h).

#include <ATen/ATen.h>

#include "rl/train_options.h"

namespace rlft::rl {

/// Enables autocast for `compute` on `device` for its lifetime (nothing for fp32).
class AutocastGuard {
 public:
  AutocastGuard(Compute compute, const at::Device& device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool cpu_ = false, cuda_ = false;
  bool prev_cpu_ = false, prev_cuda_ = false;
  at::ScalarType prev_cpu_dtype_ = at::kBFloat16, prev_cuda_dtype_ = at::kHalf;
};

/// Throws rlft::ConfigError when `compute` cannot run on `device` (fp16 autocast on CPU).
void check_precision(const PrecisionOptions& precision, const at::Device& device);

}  // namespace rlft::rl
