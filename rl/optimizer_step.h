#pragma once
// OptimizerStep: what happens between backward() and the weights — the gradient all-reduce
// of a multi-rank run, un-scaling, the non-finite check, clipping, AdamW, and counting
// skipped steps (too many in a row stop the run with a clear error) — and the trainer
// state it resumes from.

#include <ATen/ATen.h>

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
  /// True when losses are scaled (precision.loss_scaling).
  bool loss_scaling() const { return precision_.loss_scaling; }
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

/// The trainer state of checkpoint directory `checkpoint` loaded into `opt` (AdamW moments and
/// loss-scale state), read by rank 0 and broadcast to the others; a fresh state when
/// `checkpoint` is "" (a run that does not resume).
TrainerState resume_trainer_state(const std::string& checkpoint, dist::Context& context, OptimizerStep& opt);

}  // namespace rlft::rl
