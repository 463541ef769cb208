#pragma once
// A small pool of worker threads for the inference kernels of a decode step (the few-rows
// GEMM). A decode step runs dozens of short threaded products back to back; through OpenMP
// each one wakes its sleeping threads with a futex and puts them back to sleep after
// (OMP_WAIT_POLICY=PASSIVE, which rlft sets so that OpenMP threads leave the cores to
// OpenBLAS in training). Measured on 2 cores: that wake-up and sleep cost about a fifth of a
// one-sequence decode step. These workers instead spin for a short while (kSpinMicros) after
// a task before they sleep, so back-to-back products find them awake, while in training,
// where no such product runs, they sleep and take nothing from OpenBLAS or OpenMP.
//
// One caller at a time: a second thread calling run() while the pool is busy (rollout
// workers in parallel), or a call from inside a parallel region, runs through
// at::parallel_for instead.

#include <cstdint>
#include <functional>

namespace rlft::policy {

/// Microseconds a worker keeps spinning for the next task before it sleeps.
constexpr int64_t kSpinMicros = 200;

/// Runs fn(t) for every t in [0, n_tasks) on the caller and at::get_num_threads() − 1
/// workers; returns when all are done. Exceptions are not allowed to leave fn.
void spin_pool_run(int64_t n_tasks, const std::function<void(int64_t)>& fn);

}  // namespace rlft::policy
