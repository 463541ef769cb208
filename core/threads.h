#pragma once
// Intra-op threads. LibTorch's default counts physical cores (1 on a 2-vCPU machine whose
// vCPUs are SMT siblings); rlft's default is every core the process may use.

namespace rlft {

/// Sets LibTorch's intra-op thread count: `requested` > 0 as given, 0 = OMP_NUM_THREADS when
/// set (what `rlft launch` and torchrun give each rank), else every core.
/// Returns the count in force.
int apply_thread_count(int requested);

}  // namespace rlft
