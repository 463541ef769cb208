#include "policy/kernels/small_gemm.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>

#include <algorithm>

#include "core/error.h"
#include "policy/kernels/spin_pool.h"

namespace rlft::policy {
namespace kernels {
// Two per instruction set (small_gemm.<isa>.cpp). x · wᵀ: y[i, j] for j in [n_begin, n_end).
using SmallGemmFn = void (*)(const float* x, int64_t ldx, int64_t m, const float* w, int64_t k_width, int64_t n_begin,
                             int64_t n_end, float* y, int64_t ldy);
// x · w: w [k_width, n] with row stride ldw.
using SmallGemmNnFn = void (*)(const float* x, int64_t ldx, int64_t m, const float* w, int64_t ldw, int64_t k_width,
                               int64_t n, float* y, int64_t ldy);
#define RLFT_DECLARE_SMALL_GEMM(isa)                                                                               \
  void small_gemm_##isa(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float*, int64_t); \
  void small_gemm_nn_##isa(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float*, int64_t);
RLFT_DECLARE_SMALL_GEMM(base)
#if defined(__x86_64__)
RLFT_DECLARE_SMALL_GEMM(avx512)
RLFT_DECLARE_SMALL_GEMM(avx2)
#endif
#undef RLFT_DECLARE_SMALL_GEMM
}  // namespace kernels

namespace {

struct Isa {
  const char* name;
  kernels::SmallGemmFn fn;
  kernels::SmallGemmNnFn nn;
  bool supported;
};

std::vector<Isa> all_isas() {
  std::vector<Isa> out;
#if defined(__x86_64__)
  __builtin_cpu_init();
  out.push_back(
      {"avx512", kernels::small_gemm_avx512, kernels::small_gemm_nn_avx512, __builtin_cpu_supports("avx512f") != 0});
  out.push_back({"avx2", kernels::small_gemm_avx2, kernels::small_gemm_nn_avx2,
                 __builtin_cpu_supports("avx2") != 0 && __builtin_cpu_supports("fma") != 0});
#endif
  out.push_back({"base", kernels::small_gemm_base, kernels::small_gemm_nn_base, true});
  return out;
}

// Detected once per process.
const std::vector<Isa>& isas() {
  static const std::vector<Isa> detected = all_isas();
  return detected;
}

const Isa& kernel_for(const std::string& isa) {
  std::string known;
  for (const auto& i : isas()) {
    if (!i.supported) continue;
    if (isa.empty() || isa == i.name) return i;
    known += known.empty() ? i.name : std::string(", ") + i.name;
  }
  RLFT_CHECK(false, "small GEMM kernel '{}': not available on this CPU (it runs: {})", isa, known);
  return isas().back();
}

// Weight rows per task: about 128 KiB of weights, a whole number of blocks (4 rows).
int64_t rows_per_task(int64_t k) {
  return std::max<int64_t>(4, (32768 / std::max<int64_t>(k, 1)) / 4 * 4);
}

}  // namespace

const char* small_gemm_isa() {
  return kernel_for("").name;
}

std::vector<std::string> small_gemm_isas() {
  std::vector<std::string> out;
  for (const auto& i : isas())
    if (i.supported) out.push_back(i.name);
  return out;
}

void run_small_gemm(const std::vector<SmallGemmJob>& jobs, const std::string& isa) {
  const Isa& kernel = kernel_for(isa);
  // Tasks: a job's output columns [n_begin, n_end). x · wᵀ jobs are split into
  // rows_per_task(k) weight rows each, x · w jobs (small: attention over one row's cache)
  // stay whole.
  struct Task {
    const SmallGemmJob* job;
    int64_t n_begin, n_end;
  };
  std::vector<Task> tasks;
  for (const auto& job : jobs) {
    if (job.rows == 0 || job.n == 0) continue;
    const int64_t step = job.w_is_kn ? job.n : rows_per_task(job.k);
    for (int64_t n = 0; n < job.n; n += step) tasks.push_back({&job, n, std::min(job.n, n + step)});
  }
  // On the spinning pool: a decode step runs these back to back (spin_pool.h).
  spin_pool_run(static_cast<int64_t>(tasks.size()), [&](int64_t t) {
    const Task& task = tasks[static_cast<size_t>(t)];
    const SmallGemmJob& job = *task.job;
    if (job.w_is_kn)
      kernel.nn(job.x, job.ldx, job.rows, job.w, job.ldw, job.k, job.n, job.y, job.ldy);
    else
      kernel.fn(job.x, job.ldx, job.rows, job.w, job.k, task.n_begin, task.n_end, job.y, job.ldy);
  });
}

bool small_gemm_takes_operand(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && !(at::GradMode::is_enabled() && t.requires_grad()) &&
         !at::autocast::is_cpu_enabled();
}

bool small_gemm_takes_weight(const at::Tensor& w) {
  return small_gemm_takes_operand(w) && w.dim() == 2 && w.is_contiguous();
}

bool small_gemm_takes(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (!small_gemm_takes_weight(w) || !small_gemm_takes_operand(x) || (b.defined() && !small_gemm_takes_operand(b)))
    return false;
  if (x.dim() < 1 || x.size(-1) != w.size(1) || x.stride(-1) != 1) return false;
  return x.dim() <= 2 || x.is_contiguous();  // rows must sit at one stride
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return linear_many(x, {w}, {b})[0];
}

std::vector<at::Tensor> linear_many(const at::Tensor& x, const std::vector<at::Tensor>& ws,
                                    const std::vector<at::Tensor>& bs) {
  RLFT_CHECK(bs.empty() || bs.size() == ws.size(), "linear_many: {} biases for {} weights", bs.size(), ws.size());
  auto bias = [&](size_t i) { return bs.empty() ? at::Tensor() : bs[i]; };
  const int64_t rows = x.size(-1) > 0 ? x.numel() / x.size(-1) : 0;
  bool fused = rows >= 1 && rows <= kSmallGemmMaxRows;
  for (size_t i = 0; fused && i < ws.size(); ++i) fused = small_gemm_takes(x, ws[i], bias(i));
  std::vector<at::Tensor> out;
  if (!fused) {
    for (size_t i = 0; i < ws.size(); ++i) out.push_back(at::linear(x, ws[i], bias(i)));
    return out;
  }
  const int64_t k = x.size(-1);
  const auto x2 = x.reshape({-1, k});  // [M, K], a view: rows at one stride
  std::vector<SmallGemmJob> jobs;
  for (const auto& w : ws) {
    out.push_back(at::empty({x2.size(0), w.size(0)}, x.options()));
    jobs.push_back(SmallGemmJob{x2.data_ptr<float>(), x2.stride(0), x2.size(0), w.data_ptr<float>(), k, w.size(0),
                                out.back().data_ptr<float>(), w.size(0)});
  }
  run_small_gemm(jobs);
  for (size_t i = 0; i < ws.size(); ++i) {
    if (bias(i).defined()) out[i].add_(bias(i));
    auto sizes = x.sizes().vec();
    sizes.back() = ws[i].size(0);
    out[i] = out[i].view(sizes);
  }
  return out;
}

}  // namespace rlft::policy
