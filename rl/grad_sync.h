#pragma once
// Data-parallel gradients: after the backward passes of an optimizer step, every rank holds
// the gradient of its share of the global batch (already weighted by the global token or
// row count, rl/grpo_trainer.cpp); GradientSync sums them over ranks so that every rank
// takes the same optimizer step.
//
// Gradients go in flat buckets of about `bucket_mb` MiB, in reverse parameter order (the
// order backward produces them), all in flight at once. A parameter that got no gradient on
// any rank (an expert no token chose, an unused head) keeps no gradient, exactly as in a
// single process, so AdamW leaves it alone; one that got a gradient on some ranks only takes
// zeros from the others.
//
// The all-reduce starts after the last backward of the step: LibTorch 1.13's C++ API has no
// hook that fires once a leaf's gradient is accumulated, which overlapping would need.

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "core/distributed.h"

namespace rlft::rl {

struct GradientSyncReport {
  double seconds = 0.0;       ///< wall time of the exchange (flattening and copying back included)
  double wait_seconds = 0.0;  ///< of which the first, one-value all-reduce: mostly waiting for the slowest rank
  int64_t bytes = 0;          ///< gradient bytes each rank contributed
  int64_t buckets = 0;
};

class GradientSync {
 public:
  GradientSync(dist::Context& context, std::vector<at::Tensor> params, double bucket_mb);
  /// Sums every parameter's gradient over ranks, in place. Nothing for a world of one.
  GradientSyncReport sync();

 private:
  dist::Context& context_;
  std::vector<at::Tensor> params_;
  int64_t bucket_bytes_;
};

}  // namespace rlft::rl
