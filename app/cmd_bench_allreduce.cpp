// `rlft bench allreduce`: the process group's all-reduce time and bandwidth for a range of
// sizes, run under `rlft launch --nproc N` (or torchrun). Ranks meet at a barrier before each
// timed call, so the figures are the transfer alone, not one rank waiting for another.
//
// algbw = bytes / time; busbw = algbw · 2(N−1)/N (a ring all-reduce sends and receives
// 2(N−1)/N of the bytes on every link): the per-link rate, comparable across N. From the
// busbw of the largest size and the latency of the smallest, rank 0 estimates the time of the
// same all-reduce on 8 ranks with such links: 2·7/8 · bytes / busbw + 2·7 · latency.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "app/cli.h"
#include "core/distributed.h"
#include "core/error.h"

namespace rlft::app {
namespace {

struct BenchAllReduceCli {
  std::vector<double> sizes_mb{0.004, 0.25, 1, 4, 16, 64};
  int iters = 10;
  double timeout_s = 120;
  bool json = false;
};

void run_bench_allreduce(const BenchAllReduceCli& o) {
  const auto env = dist::Env::from_environment();
  RLFT_CHECK_AS(UsageError, env.world_size > 1,
                "bench allreduce needs several ranks: rlft launch --nproc 2 -- bench allreduce");
  dist::Options opt;
  opt.timeout_s = o.timeout_s;
  auto ctx = dist::Context::create(env, opt);
  const int n = ctx->world_size();
  const double ring = 2.0 * (n - 1) / n;
  nlohmann::json cases = nlohmann::json::array();
  for (const double mb : o.sizes_mb) {
    const int64_t elems = std::max<int64_t>(1, static_cast<int64_t>(mb * 1e6 / 4));
    std::vector<at::Tensor> t{at::ones({elems}, at::kFloat)};
    ctx->all_reduce_sum(t);  // warm-up: connections and buffers
    std::vector<double> times;
    for (int i = 0; i < o.iters; ++i) {
      ctx->barrier();
      const auto t0 = std::chrono::steady_clock::now();
      ctx->all_reduce_sum(t);
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    // Each rank's median; the slowest rank's is the collective's.
    std::sort(times.begin(), times.end());
    const double secs = ctx->max({times[times.size() / 2]})[0];
    const double bytes = static_cast<double>(elems) * 4;
    cases.push_back({{"megabytes", bytes / 1e6},
                     {"seconds", secs},
                     {"algbw_gbps", bytes / secs / 1e9},
                     {"busbw_gbps", ring * bytes / secs / 1e9}});
  }
  if (!ctx->is_main()) return;
  const auto& small = cases.front();
  const auto& big = cases.back();
  const double latency = small["seconds"].get<double>();
  const double busbw = big["busbw_gbps"].get<double>() * 1e9;
  nlohmann::json j = {
      {"world_size", n}, {"backend", ctx->backend()}, {"cases", cases}, {"estimate_8_ranks", nlohmann::json::array()}};
  for (const auto& c : cases) {
    const double bytes = c["megabytes"].get<double>() * 1e6;
    j["estimate_8_ranks"].push_back(
        {{"megabytes", c["megabytes"]}, {"seconds", 2.0 * 7 / 8 * bytes / busbw + 2.0 * 7 * latency}});
  }
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("all-reduce ({}, {} ranks, median of {}):\n{:>10} {:>10} {:>11} {:>11} {:>14}\n",
                           ctx->backend(), n, o.iters, "MB", "ms", "algbw GB/s", "busbw GB/s", "8 ranks (est)");
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    std::cout << fmt::format("{:>10.3f} {:>10.3f} {:>11.3f} {:>11.3f} {:>11.3f} ms\n", c["megabytes"].get<double>(),
                             1e3 * c["seconds"].get<double>(), c["algbw_gbps"].get<double>(),
                             c["busbw_gbps"].get<double>(), 1e3 * j["estimate_8_ranks"][i]["seconds"].get<double>());
  }
  std::cout << fmt::format(
      "8-rank estimate: 2·7/8 · bytes / {:.2f} GB/s (the largest size's busbw) + 14 · {:.3f} ms (the smallest size's "
      "time, as the per-hop latency)\n",
      busbw / 1e9, 1e3 * latency);
}

}  // namespace

void add_bench_allreduce(CLI::App& bench) {
  auto o = std::make_shared<BenchAllReduceCli>();
  CLI::App* cmd = bench.add_subcommand("allreduce", "All-reduce time and bandwidth across ranks (under rlft launch)");
  cmd->add_option("--sizes", o->sizes_mb, "megabytes per all-reduce")->delimiter(',')->capture_default_str();
  cmd->add_option("--iters", o->iters, "timed calls per size")->capture_default_str();
  cmd->add_option("--timeout", o->timeout_s, "collective timeout (s)")->capture_default_str();
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] { run_bench_allreduce(*o); });
}

}  // namespace rlft::app
