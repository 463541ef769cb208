// `rlft bench …`: benchmarks that print figures. `gemm` is the machine's own yardstick;
// model, tokenizer, rollout, train and allreduce live in their own files (app/cmd_bench_*.cpp).
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <iostream>
#include <optional>

#include "app/cli.h"
#include "core/blas.h"
#include "core/gemm_rate.h"
#include "core/progress.h"
#include "core/threads.h"

namespace rlft::app {

void add_bench_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("bench", "Benchmarks that print figures");
  cmd->require_subcommand(1);
  add_bench_rollout(*cmd);
  add_bench_tokenizer(*cmd);
  struct GemmOptions {
    std::vector<int64_t> sizes{256, 512, 1024, 2048};
    bool json = false;
    int threads = 0;
  };
  auto o = std::make_shared<GemmOptions>();
  CLI::App* gemm = cmd->add_subcommand("gemm", "fp32 and bf16 matrix-multiply rates (GFLOP/s)");
  gemm->add_option("--sizes", o->sizes, "square sizes")->delimiter(',')->capture_default_str();
  gemm->add_option("--threads", o->threads, "intra-op threads (0 = every core)");
  gemm->add_flag("--json", o->json, "print one JSON object");
  gemm->callback([o] {
    apply_thread_count(o->threads);
    const blas::Info b = blas::info();
    nlohmann::json j;
    j["blas"] = b.vendor;
    j["blas_core"] = b.core;
    j["threads"] = at::get_num_threads();
    j["cases"] = nlohmann::json::array();
    if (!o->json)
      std::cout << fmt::format("BLAS {} {} — {} threads\n{:>6} {:>12} {:>12}\n", b.vendor, b.core,
                               at::get_num_threads(), "n", "fp32 GF/s", "bf16 GF/s");
    std::vector<std::string> lines;
    {
      Progress progress("gemm", static_cast<int64_t>(o->sizes.size()));
      for (int64_t n : o->sizes) {
        const GemmRate f = measure_gemm(n, at::kFloat);
        const GemmRate h = measure_gemm(n, at::kBFloat16);
        j["cases"].push_back({{"n", n}, {"fp32_gflops", f.gflops}, {"bf16_gflops", h.gflops}});
        lines.push_back(fmt::format("{:>6} {:>12.1f} {:>12.1f}\n", n, f.gflops, h.gflops));
        progress.advance(1, fmt::format("n={}", n));
      }
    }
    if (!o->json)
      for (const auto& l : lines) std::cout << l;
    if (o->json) std::cout << j.dump(2) << "\n";
  });
  add_bench_model(*cmd);
  add_bench_train(*cmd);
  add_bench_allreduce(*cmd);
}

}  // namespace rlft::app
