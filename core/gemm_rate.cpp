#include "core/gemm_rate.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/cuda.h>

#include <chrono>

namespace rlft {

GemmRate measure_gemm(int64_t n, at::ScalarType dtype, c10::Device device, double min_seconds) {
  at::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1234);
  auto a = at::randn({n, n}, gen, at::kFloat).to(device, dtype);
  auto b = at::randn({n, n}, gen, at::kFloat).to(device, dtype);
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  auto c = at::mm(a, b);  // warm-up: first-call allocations, kernel selection
  sync();
  GemmRate r;
  r.n = n;
  r.seconds = 1e30;
  double total = 0.0;
  while (r.repetitions < 3 || total < min_seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    c = at::mm(a, b);
    sync();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    total += s;
    r.seconds = std::min(r.seconds, s);
    ++r.repetitions;
    if (r.repetitions >= 200) break;
  }
  r.gflops = 2.0 * double(n) * double(n) * double(n) / r.seconds / 1e9;
  return r;
}

}  // namespace rlft
