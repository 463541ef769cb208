// `rlft bench train [--sft]`: GRPO (or SFT) steps of a config (default configs/bench/train.yaml:
// the default pipeline's model and task), timed by phase, in a temporary directory and store.
// Prints trainer tokens/s, the share of step time in rollout, reward, train, sync and the
// gradient all-reduce, and the training FLOP/s against the fp32 GEMM rate measured in the
// same run.
//
// Under `rlft launch --nproc N` it is the data-parallel scaling bench: the ranks train the
// same global batch together, rank 0 prints; the all-reduce line gives the gradient bytes per
// step, the time they took and the bus bandwidth that implies (ring all-reduce: each rank
// sends and receives 2(N−1)/N of the bytes), and from it an estimate for 8 ranks.
//
// Training FLOPs are counted as 6 · (active parameters per token) · (tokens trained) — the
// matrix products of forward and backward; attention's score products are left out, so the
// ratio understates the work slightly.
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <filesystem>
#include <iostream>
#include <map>

#include "app/cli.h"
#include "core/config.h"
#include "core/distributed.h"
#include "core/error.h"
#include "core/gemm_rate.h"
#include "core/log.h"
#include "core/threads.h"
#include "rl/grpo_trainer.h"
#include "rl/job.h"
#include "rl/optimizer.h"
#include "rl/sft_trainer.h"

namespace rlft::app {
namespace {

namespace fs = std::filesystem;

struct BenchTrainCli {
  std::string config = "configs/bench/train.yaml";  // relative to the working directory (the source tree)
  std::vector<std::string> overrides;
  int64_t steps = 0;
  int threads = 0;
  bool json = false;
  bool sft = false;
  int64_t compare_lora = 0;    // > 0: full fine-tuning and LoRA of this rank, one child process each
  int64_t compare_async = -1;  // >= 0: sync and async rollout with this max_staleness, one child process each
  int64_t rollout_ranks = 0;   // with compare_async: async on this many rollout ranks beside one trainer rank
};

// One variant of --compare-lora: `rlft bench train … --json` as a child process; its JSON and
// its peak resident memory (wait4's ru_maxrss: the whole process, start-up included).
struct BenchChild {
  nlohmann::json result;
  double peak_rss_mb = 0;
};

BenchChild run_bench_child(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/proc/self/exe"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  int out[2];
  RLFT_CHECK(::pipe(out) == 0, "bench train: pipe failed: {}", std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  RLFT_CHECK(rc == 0, "bench train: cannot start a child: {}", std::strerror(rc));
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  struct rusage usage {};
  while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  RLFT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "bench train: `rlft {}` failed (status {})",
             fmt::join(args, " "), status);
  BenchChild c;
  c.result = nlohmann::json::parse(text.substr(text.find('{')));
  c.peak_rss_mb = static_cast<double>(usage.ru_maxrss) / 1024.0;
  return c;
}

// The command line of a child bench run: the parent's options and config overrides, --json.
std::vector<std::string> bench_child_args(const BenchTrainCli& o) {
  std::vector<std::string> args = {"bench", "train", "--config", o.config, "--json"};
  if (o.sft) args.push_back("--sft");
  if (o.steps > 0) args.insert(args.end(), {"--steps", std::to_string(o.steps)});
  if (o.threads > 0) args.insert(args.end(), {"--threads", std::to_string(o.threads)});
  for (const auto& s : o.overrides) args.insert(args.end(), {"--set", s});
  return args;
}

// --compare-lora R: the same config fully fine-tuned and with LoRA rank R (alpha 2R) on every
// trunk linear layer (attention, dense MLPs, routed and shared experts), each in its own
// process so that each peak is its own.
void run_lora_comparison(const BenchTrainCli& o) {
  const auto common = bench_child_args(o);
  auto lora = common;
  lora.insert(lora.end(), {"--set", fmt::format("lora.rank={}", o.compare_lora), "--set",
                           fmt::format("lora.alpha={}", 2 * o.compare_lora)});
  const auto full = run_bench_child(common);
  const auto adapted = run_bench_child(lora);
  const double ratio = adapted.peak_rss_mb / std::max(full.peak_rss_mb, 1e-9);
  if (o.json) {
    nlohmann::json j = {
        {"config", o.config},     {"lora_rank", o.compare_lora},          {"full", full.result},
        {"lora", adapted.result}, {"full_peak_rss_mb", full.peak_rss_mb}, {"lora_peak_rss_mb", adapted.peak_rss_mb},
        {"peak_ratio", ratio}};
    std::cout << j.dump(2) << "\n";
    return;
  }
  auto row = [](const char* name, const BenchChild& c, const std::string& note) {
    return fmt::format("  {:<20} {:9.0f} MB {:10.2f} s {:14.3f}M {:>9}\n", name, c.peak_rss_mb,
                       c.result.value("step_seconds", 0.0), c.result.value("trainable_params", 0.0) / 1e6, note);
  };
  std::cout << fmt::format("LoRA vs full fine-tuning: {} ({}), one process each\n", o.config, o.sft ? "SFT" : "GRPO");
  std::cout << fmt::format("  {:<20} {:>12} {:>12} {:>15} {:>9}\n", "", "peak RSS", "s/step", "trainable", "");
  std::cout << row("full fine-tuning", full, "");
  std::cout << row(fmt::format("LoRA r = {}", o.compare_lora).c_str(), adapted, fmt::format("{:.2f}×", ratio));
  std::cout << fmt::format("  memory estimate (full)  {}\n", full.result.value("memory_estimate", std::string()));
  std::cout << fmt::format("  memory estimate (LoRA)  {}\n", adapted.result.value("memory_estimate", std::string()));
}

// --compare-async K: the same GRPO config with rollout then training (sync) and with rollout of
// later steps beside training (async, max_staleness K), one process each (with --rollout-ranks
// R, the async run is `rlft launch` of one trainer rank and R rollout ranks). The goal: the
// async step within 1.15 × the longer of the sync run's rollout (with rewards) and training.
void run_async_comparison(const BenchTrainCli& o) {
  RLFT_CHECK_AS(UsageError, !o.sft, "--compare-async: a GRPO bench (not --sft)");
  auto sync_args = bench_child_args(o);
  sync_args.insert(sync_args.end(), {"--set", "grpo.rollout.mode=sync"});
  auto async_args = bench_child_args(o);
  async_args.insert(async_args.end(), {"--set", "grpo.rollout.mode=async", "--set",
                                       fmt::format("grpo.rollout.max_staleness={}", o.compare_async)});
  if (o.rollout_ranks > 0) {
    async_args.insert(async_args.end(), {"--set", fmt::format("distributed.rollout_ranks={}", o.rollout_ranks)});
    async_args.insert(async_args.begin(), {"launch", "--nproc", std::to_string(1 + o.rollout_ranks), "--"});
  }
  const auto sync = run_bench_child(sync_args).result;
  const auto async = run_bench_child(async_args).result;
  RLFT_CHECK(async.value("rollout_ranks", 0) == o.rollout_ranks,
             "bench train: the async run used {} rollout rank(s), not {}", async.value("rollout_ranks", 0),
             o.rollout_ranks);
  const double step_sync = sync.value("step_seconds", 0.0), step_async = async.value("step_seconds", 0.0);
  const double rollout = step_sync * (sync.value("share_rollout", 0.0) + sync.value("share_reward", 0.0));
  const double train = step_sync * sync.value("share_train", 0.0);
  const double bound = 1.15 * std::max(rollout, train);
  const nlohmann::json j = {{"config", o.config},
                            {"max_staleness", o.compare_async},
                            {"rollout_ranks", o.rollout_ranks},
                            {"sync", sync},
                            {"async", async},
                            {"sync_rollout_seconds", rollout},
                            {"sync_train_seconds", train},
                            {"async_step_bound_seconds", bound},
                            {"speedup", step_sync / std::max(step_async, 1e-9)},
                            {"within_bound", step_async <= bound}};
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("async vs sync rollout: {} (GRPO, max_staleness {}), {}\n", o.config, o.compare_async,
                           o.rollout_ranks > 0
                               ? fmt::format("async on 1 trainer rank + {} rollout rank(s)", o.rollout_ranks)
                               : std::string("one process each"));
  std::cout << fmt::format("  sync    {:8.3f} s/step = rollout + rewards {:.3f} s + train {:.3f} s\n", step_sync,
                           rollout, train);
  std::cout << fmt::format(
      "  async   {:8.3f} s/step   (waited {:.3f} s for rollout, {:.3f} s of rollout ran beside training, "
      "staleness {:.2f})\n",
      step_async, async.value("rollout_wait_seconds", 0.0), async.value("rollout_overlap_seconds", 0.0),
      async.value("staleness", 0.0));
  std::cout << fmt::format("  goal    async ≤ 1.15 × max(rollout, train) = {:.3f} s: {} ({:.2f}× the sync step rate)\n",
                           bound, step_async <= bound ? "met" : "not met", step_sync / std::max(step_async, 1e-9));
}

void run_bench_train(const BenchTrainCli& o) {
  if (o.compare_lora > 0) return run_lora_comparison(o);
  if (o.compare_async >= 0) return run_async_comparison(o);
  const int threads = apply_thread_count(o.threads);
  // One directory for all ranks of a launch (rank 0 writes in it): named after the rendezvous.
  const auto env = dist::Env::from_environment();
  const auto tmp = fs::temp_directory_path() /
                   (env.world_size > 1 ? fmt::format("rlft-bench-train-{}-{}", env.master_addr, env.master_port)
                                       : fmt::format("rlft-bench-train-{}", ::getpid()));
  struct Cleanup {
    fs::path p;
    bool owner;
    ~Cleanup() {
      std::error_code ec;
      if (owner) fs::remove_all(p, ec);
    }
  } cleanup{tmp, env.rank == 0};
  std::vector<std::string> ov = o.overrides;
  ov.push_back(fmt::format("run.store={}", (tmp / "rlft.db").string()));
  ov.push_back(fmt::format("run.output_dir={}", (tmp / "run").string()));
  ov.push_back("run.name=bench-train");
  ov.push_back(fmt::format("run.threads={}", threads));
  if (o.steps > 0) ov.push_back(fmt::format("{}.steps={}", o.sft ? "sft" : "grpo", o.steps));
  if (!o.json) log::set_level(log::Level::kWarn);
  auto parsed = rl::parse_job(ConfigView::load(o.config, ov), o.sft ? rl::JobKind::kSft : rl::JobKind::kGrpo);
  const rl::TrainerSections trainers = parsed.trainers;
  const int64_t steps = o.sft ? trainers.sft->steps : trainers.grpo->steps;
  RLFT_CHECK_AS(UsageError, steps >= 1, "bench train needs at least 1 step");
  const auto gemm = measure_gemm(1024, at::kFloat);
  if (env.rank == 0) fs::create_directories(tmp);
  rl::Job job(std::move(parsed.spec), "bench", false);
  const auto active = static_cast<double>(job.model()->param_counts().active);
  double trainable = 0;
  for (const auto& [name, p] : rl::trainable_parameters(*job.model())) trainable += static_cast<double>(p.numel());
  const std::string memory_estimate = o.sft ? "" : rl::grpo_memory_estimate(job, *trainers.grpo).describe();
  if (o.sft)
    rl::run_sft(job, *trainers.sft);
  else
    rl::run_grpo(job, *trainers.grpo);
  if (!job.is_main()) return;  // rank 0 reads the store and reports

  // Averages over steps 2.. (step 1 warms caches and allocators); over step 1 when it is the
  // only one (the real-shape configs, whose steps take minutes).
  const int64_t first = steps >= 2 ? 2 : 1;
  std::map<std::string, double> sum;
  auto& store = job.store();
  const std::vector<std::string> names = {"time/rollout",
                                          "time/reward",
                                          "time/train",
                                          "time/sync",
                                          "time/step",
                                          "time/allreduce",
                                          "time/allreduce_wait",
                                          "tokens_per_s",
                                          "rollout/decode_tokens_per_s",
                                          "response_length/mean",
                                          "rollout/prefill_tokens",
                                          "allreduce/megabytes",
                                          "time/rollout_wait",
                                          "time/rollout_overlap",
                                          "rollout/staleness"};
  for (const auto& n : names)
    for (const auto& p : store.metric_series(job.run_id(), n))
      if (p.step >= first) sum[n] += p.value;
  const double n_avg = static_cast<double>(steps - first + 1);
  // Peak memory: the largest step's, warm-up included (it allocates what later steps reuse).
  double peak_rss_mb = 0, cuda_peak_mb = -1;
  for (const auto& p : store.metric_series(job.run_id(), "memory/peak_rss_mb"))
    peak_rss_mb = std::max(peak_rss_mb, p.value);
  for (const auto& p : store.metric_series(job.run_id(), "memory/cuda_max_allocated_mb"))
    cuda_peak_mb = std::max(cuda_peak_mb, p.value);
  for (auto& [k, v] : sum) v /= n_avg;
  double rows = 0, train_gflops = 0;
  if (o.sft) {
    rows = static_cast<double>(trainers.sft->batch_size);
    sum["time/step"] = sum["time/train"];
    train_gflops = 6.0 * active * sum["tokens_per_s"] / 1e9;
  } else {
    const auto& g = *trainers.grpo;
    rows = static_cast<double>(g.prompts_per_step * g.group_size);
    // Tokens trained per step: prompt + completion of every row. Rollout prefills each prompt
    // once per group (rollout/prefill_tokens), the trainer runs it in all G rows.
    const double trained_tokens =
        (static_cast<double>(g.group_size) * sum["rollout/prefill_tokens"] + rows * sum["response_length/mean"]) *
        static_cast<double>(g.epochs);
    train_gflops = 6.0 * active * trained_tokens / std::max(sum["time/train"], 1e-9) / 1e9;
  }
  const double step = std::max(sum["time/step"], 1e-9);
  const int world = job.dist().world_size();
  // Ring all-reduce: t = 2(N−1)/N · bytes / bus bandwidth.
  const double ring = [](int n) { return 2.0 * (n - 1) / n; }(world);
  // The transfer: the all-reduce time less its first one-value exchange, where the ranks
  // mostly wait for the slowest one to finish its backward.
  const double transfer = sum["time/allreduce"] - sum["time/allreduce_wait"];
  const double bus_gbps = world > 1 && transfer > 0 ? ring * sum["allreduce/megabytes"] * 1e6 / transfer / 1e9 : 0.0;
  const double estimate8 = bus_gbps > 0 ? 2.0 * 7 / 8 * sum["allreduce/megabytes"] * 1e6 / (bus_gbps * 1e9) : 0.0;

  nlohmann::json j = {{"config", o.config},
                      {"trainer", o.sft ? "sft" : "grpo"},
                      {"world_size", world},
                      {"rollout_ranks", job.rollout_ranks()},
                      {"threads", threads},
                      {"steps", steps},
                      {"rows_per_step", rows},
                      {"active_params", active},
                      {"trainable_params", trainable},
                      {"tokens_per_s", sum["tokens_per_s"]},
                      {"step_seconds", step},
                      {"share_rollout", sum["time/rollout"] / step},
                      {"share_reward", sum["time/reward"] / step},
                      {"share_train", sum["time/train"] / step},
                      {"share_sync", sum["time/sync"] / step},
                      {"allreduce_seconds", sum["time/allreduce"]},
                      {"allreduce_wait_seconds", sum["time/allreduce_wait"]},
                      {"allreduce_megabytes", sum["allreduce/megabytes"]},
                      {"allreduce_bus_gbps", bus_gbps},
                      {"allreduce_seconds_8_ranks_estimate", estimate8},
                      {"decode_tokens_per_s", sum["rollout/decode_tokens_per_s"]},
                      {"train_gflops", train_gflops},
                      {"gemm_gflops", gemm.gflops},
                      {"train_vs_gemm", train_gflops / gemm.gflops},
                      {"peak_rss_mb", peak_rss_mb},
                      {"rollout_wait_seconds", sum["time/rollout_wait"]},
                      {"rollout_overlap_seconds", sum["time/rollout_overlap"]},
                      {"staleness", sum["rollout/staleness"]},
                      {"memory_estimate", memory_estimate}};
  if (cuda_peak_mb >= 0) j["cuda_max_allocated_mb"] = cuda_peak_mb;
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("{} bench: {} ({} steps of {} rows, {} rank(s) × {} threads, {:.2f}M active parameters)\n",
                           o.sft ? "SFT" : "GRPO", o.config, steps, rows, world, threads, active / 1e6);
  if (o.sft)
    std::cout << fmt::format("  step          {:8.3f} s   ({:.0f} tokens/s)\n", step, sum["tokens_per_s"]);
  else
    std::cout << fmt::format("  step          {:8.3f} s   ({:.0f} tokens/s, rollout decode {:.0f} tokens/s)\n", step,
                             sum["tokens_per_s"], sum["rollout/decode_tokens_per_s"]);
  const std::vector<const char*> phases =
      o.sft ? std::vector<const char*>{"train", "allreduce"}
            : std::vector<const char*>{"rollout", "reward", "train", "sync", "allreduce"};
  for (const char* phase : phases)
    std::cout << fmt::format("  {:<13} {:8.3f} s   {:5.1f}%{}\n", phase, sum[std::string("time/") + phase],
                             100.0 * sum[std::string("time/") + phase] / step,
                             std::string(phase) == "allreduce" && !o.sft ? "   (part of train)" : "");
  if (world > 1)
    std::cout << fmt::format(
        "  all-reduce    {:.2f} MB of gradients per step in {:.4f} s ({:.4f} s waiting for the slowest rank, {:.4f} s "
        "moving and adding: bus bandwidth {:.2f} GB/s); 8 ranks on links of that bandwidth: ≈ {:.4f} s per step "
        "(2·7/8 of the bytes each) plus the wait\n",
        sum["allreduce/megabytes"], sum["time/allreduce"], sum["time/allreduce_wait"], transfer, bus_gbps, estimate8);
  std::cout << fmt::format("  train FLOP/s  {:8.2f} GFLOP/s = {:.1f}% of the fp32 GEMM rate ({:.1f} GFLOP/s, 1024³)\n",
                           train_gflops, 100.0 * train_gflops / gemm.gflops, gemm.gflops);
  std::cout << fmt::format("  peak memory   {:8.0f} MB resident (the largest step){}\n", peak_rss_mb,
                           cuda_peak_mb >= 0 ? fmt::format(", CUDA {:.0f} MB allocated", cuda_peak_mb) : "");
  if (!memory_estimate.empty()) std::cout << "  estimate      " << memory_estimate << "\n";
}

}  // namespace

void add_bench_train(CLI::App& bench) {
  auto o = std::make_shared<BenchTrainCli>();
  CLI::App* cmd = bench.add_subcommand(
      "train", "GRPO or SFT trainer tokens/s, time per phase, FLOP/s vs the GEMM rate (under rlft launch: scaling)");
  cmd->add_option("--config", o->config, "a GRPO config")->capture_default_str();
  cmd->add_option("--set", o->overrides, "override a key: a.b.c=value (repeatable)");
  cmd->add_option("--steps", o->steps, "GRPO steps (default: the config's)");
  cmd->add_option("--threads", o->threads, "intra-op threads (0 = every core)");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_flag("--sft", o->sft, "SFT steps (the config's sft: section) instead of GRPO");
  cmd->add_option("--compare-lora", o->compare_lora,
                  "run full fine-tuning and LoRA of this rank (all linear layers), one process each: peak memory "
                  "and seconds per step side by side");
  cmd->add_option("--compare-async", o->compare_async,
                  "run GRPO with sync and with async rollout of this max_staleness, one process each: seconds per "
                  "step against the bound 1.15 × max(rollout, train)");
  cmd->add_option("--rollout-ranks", o->rollout_ranks,
                  "with --compare-async: run the async side as one trainer rank and this many rollout ranks (rlft "
                  "launch)");
  cmd->callback([o] { run_bench_train(*o); });
}

}  // namespace rlft::app
