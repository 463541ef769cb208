#pragma once
// Mixed precision for training: fp32 master weights and optimizer state always; the forward
// computes in fp32, or in bf16/fp16 under autocast (LibTorch's per-op casting: matrix
// products in the low dtype, reductions and softmax in fp32). The router, the vocabulary
// log-softmax and the losses stay fp32 (the model casts them; see policy/layers/moe.cpp).
// fp16 adds dynamic loss scaling (rl/loss_scale.h).
//
// OptimizerStep wraps what happens between backward() and the weights: un-scaling, the
// non-finite check, clipping, AdamW, and counting skipped steps — too many in a row stop
// the run with a clear error.

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/distributed.h"
#include "rl/grad_sync.h"
#include "rl/loss_scale.h"
#include "rl/optimizer.h"
#include "rl/train_options.h"
#include "rl/train_state.h"

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

struct OptimizerStepResult {
  bool applied = false;
  double grad_norm = 0.0;
  double lr = 0.0;
  double loss_scale = 1.0;
  GradientSyncReport sync;  ///< the gradient all-reduce of a multi-rank run
};

class OptimizerStep {
 public:
  /// With `context` of more than one rank, step() first sums the gradients over ranks
  /// (rl/grad_sync.h, buckets of `bucket_mb` MiB).
  OptimizerStep(const std::vector<std::pair<std::string, at::Tensor>>& params, const PrecisionOptions& precision,
                const OptimOptions& optim, int64_t total_steps, dist::Context* context = nullptr,
                double bucket_mb = 25.0);

  /// The factor to multiply a loss by before backward(): the loss scale, or inf for an
  /// injected overflow (PrecisionOptions::inject_nonfinite) on the coming optimizer step.
  double loss_multiplier(const TrainerState& state) const;
  /// Sums gradients over ranks, un-scales, checks, clips and steps (or skips). Throws rlft::Error after
  /// max_consecutive_skips skipped steps in a row.
  OptimizerStepResult step(TrainerState& state);

  Optimizer& optimizer() { return optimizer_; }
  DynamicLossScale& loss_scale() { return scale_; }
  /// Restores the loss-scale state from a checkpoint.
  void restore(const TrainerState& state);
  /// Copies the loss-scale state into `state` (before a checkpoint).
  void store(TrainerState& state) const;

 private:
  PrecisionOptions precision_;
  OptimOptions optim_;
  Optimizer optimizer_;
  DynamicLossScale scale_;
  std::unique_ptr<GradientSync> sync_;
};

/// When the job resumes: the trainer state of its checkpoint, loaded into `opt` (AdamW moments
/// and loss-scale state) — read by rank 0 and broadcast to the others. Otherwise a fresh state.
TrainerState resume_trainer_state(Job& job, OptimizerStep& opt);

/// An OptimizerStep over the trainable parameters of `module`, with the job's precision,
/// optimizer options and process group.
OptimizerStep make_optimizer_step(Job& job, const torch::nn::Module& module, int64_t total_steps);

}  // namespace rlft::rl
