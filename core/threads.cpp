#include "core/threads.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <cstdlib>
#include <thread>

namespace rlft {

int apply_thread_count(int requested) {
  int n = requested;
  if (n <= 0) {
    // OMP_NUM_THREADS, when set, is the launcher's share for this process (rlft launch, torchrun).
    if (const char* omp = std::getenv("OMP_NUM_THREADS")) n = std::atoi(omp);
  }
  if (n <= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                    : static_cast<int>(std::thread::hardware_concurrency());
    if (n <= 0) n = 1;
  }
  if (at::get_num_threads() != n) at::set_num_threads(n);
  return n;
}

}  // namespace rlft
