#pragma once
// The machine's matrix-multiply rate, measured in-process. Every benchmark prints its
// achieved FLOP/s next to this figure from the same run.

#include <ATen/ATen.h>

namespace rlft {

struct GemmRate {
  int64_t n = 0;         ///< the square size measured (n×n · n×n)
  double gflops = 0.0;   ///< best of the repetitions, 2n³ / seconds / 1e9
  double seconds = 0.0;  ///< the best single repetition
  int repetitions = 0;
};

/// Times `torch::mm` of two n×n matrices of `dtype` on `device`: one warm-up, then
/// repetitions until `min_seconds` have passed (at least 3), reporting the best.
GemmRate measure_gemm(int64_t n, at::ScalarType dtype, c10::Device device = c10::kCPU, double min_seconds = 0.5);

}  // namespace rlft
