#pragma once
// Peak memory as a metric of every step: each trainer starts a new peak when a step starts
// and reports it when the step ends, as the slowest rank saw it.
//
//   memory/peak_rss_mb            peak resident memory of the step (VmHWM after a reset), MB
//   memory/cuda_max_allocated_mb  CUDA runs: the allocator's peak of the step, MB

#include <ATen/Device.h>

#include "core/distributed.h"
#include "rl/step_log.h"

namespace rlft::rl {

/// Starts a new peak (resident memory, and the CUDA allocator's on a CUDA device).
void start_step_memory(const at::Device& device);

/// Appends the step's peaks, the maximum over ranks (collective: every rank calls it).
void append_step_memory(Metrics& m, dist::Context& context, const at::Device& device);

}  // namespace rlft::rl
