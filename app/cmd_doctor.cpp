// `rlft doctor`: what this machine gives rlft — LibTorch, CUDA devices, the BLAS actually
// loaded (and its core), threads, and measured fp32 / bf16 GEMM rates.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <iostream>
#include <optional>
#include <thread>

#include "app/cli.h"
#include "core/blas.h"
#include "core/gemm_rate.h"
#include "core/threads.h"
#include "core/version_info.h"
#include "policy/kernels/small_gemm.h"

namespace rlft::app {
namespace {

struct DoctorOptions {
  int64_t n = 1024;
  int threads = 0;
  bool json = false;
};

std::string torch_version() {
#ifdef TORCH_VERSION
  return TORCH_VERSION;
#else
  return fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH);
#endif
}

void run_doctor(const DoctorOptions& o) {
  apply_thread_count(o.threads);
  const blas::Info b = blas::info();
  const bool cuda = torch::cuda::is_available();
  const int64_t n_cuda = cuda ? static_cast<int64_t>(torch::cuda::device_count()) : 0;
  const GemmRate f32 = measure_gemm(o.n, at::kFloat);
  const GemmRate bf16 = measure_gemm(o.n, at::kBFloat16);
  std::optional<GemmRate> cuda_bf16;
  if (cuda) cuda_bf16 = measure_gemm(4096, at::kBFloat16, c10::Device(c10::kCUDA, 0));

  if (o.json) {
    nlohmann::json j;
    j["rlft_version"] = RLFT_VERSION;
    j["git_revision"] = RLFT_GIT_REVISION;
    j["libtorch_version"] = torch_version();
    j["cuda_available"] = cuda;
    j["cuda_devices"] = n_cuda;
    j["blas"] = {{"vendor", b.vendor},
                 {"library", b.library},
                 {"core", b.core},
                 {"coretype_env", b.core_env},
                 {"omp_wait_policy", b.omp_wait_policy},
                 {"thread_timeout", b.thread_timeout},
                 {"malloc_mmap_threshold", b.mmap_threshold},
                 {"malloc_trim_threshold", b.trim_threshold},
                 {"config", b.config},
                 {"threads", b.threads}};
    j["small_gemm_kernel"] = policy::small_gemm_isa();
    j["threads"] = {{"intra_op", at::get_num_threads()},
                    {"inter_op", at::get_num_interop_threads()},
                    {"hardware", std::thread::hardware_concurrency()}};
    j["gemm_n"] = o.n;
    j["gemm_fp32_gflops"] = f32.gflops;
    j["gemm_bf16_gflops"] = bf16.gflops;
    if (cuda_bf16) j["gemm_cuda_bf16_gflops"] = cuda_bf16->gflops;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("rlft          {} (git {})\n", RLFT_VERSION, RLFT_GIT_REVISION);
  std::cout << fmt::format("LibTorch      {}\n", torch_version());
  std::cout << fmt::format("CUDA          {}\n",
                           cuda ? fmt::format("{} device(s)", n_cuda) : "not available (CPU only)");
  std::cout << fmt::format("BLAS          {}{}\n", b.vendor, b.config.empty() ? "" : " — " + b.config);
  std::cout << fmt::format("  library     {}\n", b.library.empty() ? "(sgemm_ not found)" : b.library);
  if (!b.core.empty())
    std::cout << fmt::format("  core        {} (OPENBLAS_CORETYPE={})\n", b.core,
                             b.core_env.empty() ? "unset" : b.core_env);
  if (b.threads > 0)
    std::cout << fmt::format("  threads     {} (OPENBLAS_THREAD_TIMEOUT={})\n", b.threads,
                             b.thread_timeout.empty() ? "unset" : b.thread_timeout);
  std::cout << fmt::format("few-row GEMM  {} kernel (decode: up to {} rows per product)\n", policy::small_gemm_isa(),
                           policy::kSmallGemmMaxRows);
  std::cout << fmt::format("threads       intra-op {}, inter-op {}, hardware {}; OMP_WAIT_POLICY={}\n",
                           at::get_num_threads(), at::get_num_interop_threads(), std::thread::hardware_concurrency(),
                           b.omp_wait_policy.empty() ? "unset" : b.omp_wait_policy);
  std::cout << fmt::format("malloc        MALLOC_MMAP_THRESHOLD_={} MALLOC_TRIM_THRESHOLD_={}\n",
                           b.mmap_threshold.empty() ? "unset" : b.mmap_threshold,
                           b.trim_threshold.empty() ? "unset" : b.trim_threshold);
  std::cout << fmt::format("GEMM fp32     {:8.1f} GFLOP/s   ({}³, best of {})\n", f32.gflops, o.n, f32.repetitions);
  std::cout << fmt::format("GEMM bf16     {:8.1f} GFLOP/s   ({}³, best of {})\n", bf16.gflops, o.n, bf16.repetitions);
  if (cuda_bf16) std::cout << fmt::format("GEMM cuda bf16 {:7.1f} GFLOP/s   (4096³)\n", cuda_bf16->gflops);
  if (b.vendor == "reference BLAS")
    std::cout << "note          the reference BLAS is slow: install libopenblas0-pthread (scripts/setup.sh does)\n";
}

}  // namespace

void add_doctor_command(CLI::App& app) {
  auto opts = std::make_shared<DoctorOptions>();
  CLI::App* cmd = app.add_subcommand("doctor", "Show LibTorch, CUDA, BLAS and threads, and measure GEMM rates");
  cmd->add_option("--n", opts->n, "GEMM size (n×n · n×n)")->check(CLI::Range(16, 16384))->capture_default_str();
  cmd->add_option("--threads", opts->threads, "intra-op threads (0 = every core)")->check(CLI::Range(0, 1024));
  cmd->add_flag("--json", opts->json, "print one JSON object");
  cmd->callback([opts] { run_doctor(*opts); });
}

}  // namespace rlft::app
