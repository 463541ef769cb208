// Data-parallel training with real processes on loopback (Gloo): `rlft launch` and
// torchrun-style ranks started one by one. Two ranks with global batch B must give the
// metrics and weights of one rank with batch B; a dead rank, a config mismatch and different
// initial weights are errors that name the rank, within the timeout; SIGTERM to the launcher
// leaves a checkpoint; a run resumes under another world size.
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <string>
#include <thread>

#include "data/store.h"
#include "policy/arch/arch.h"
#include "policy/model_io.h"
#include "tests/rl/trainer_test_util.h"
#include "tests/support/process.h"
#include "tests/support/ranks.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_util.h"
// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

namespace fs = std::filesystem;
using rlft::test::contains;
using rlft::test::read_all;

namespace {

std::string write_job(const rlft::test::TempDir& tmp, const std::string& extra = "") {
  const std::string path = tmp.file("job.yaml");
  std::ofstream(path) << rlft::test::tiny_job_yaml(tmp.path(), "tiny", extra);
  return path;
}

std::vector<std::string> named(const rlft::test::TempDir& tmp, const std::string& name) {
  return {"--set", "run.name=" + name, "--set", "run.output_dir=" + tmp.file(name)};
}

std::vector<std::string> args(std::vector<std::string> a, const std::vector<std::string>& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

std::map<std::pair<std::string, int64_t>, double> metrics_of(const std::string& store_path, const std::string& run) {
  auto store = rlft::data::Store::open(store_path, false);
  const auto r = store.find_run(run);
  REQUIRE(r.has_value());
  std::map<std::pair<std::string, int64_t>, double> out;
  for (const auto& name : store.metric_names(r->id))
    for (const auto& point : store.metric_series(r->id, name)) out[{name, point.step}] = point.value;
  return out;
}

// Every metric but timings, throughput, memory and the all-reduce's own figures (0 on one rank) equal
// within fp32 reduction-order tolerance. `b_adds_versions`: b also records rollout/version,
// rollout/dropped_groups and the stage's timings (a run on rollout ranks), which a sync run on
// one rank does not.
void check_same_metrics(const std::string& store, const std::string& a, const std::string& b,
                        bool b_adds_versions = false) {
  const auto ma = metrics_of(store, a), mb = metrics_of(store, b);
  size_t added = 0;
  for (const auto& [key, v] : mb)
    if (!ma.count(key) &&
        (key.first == "rollout/ranks" ||  // a run on rollout ranks records how many
         (b_adds_versions && (key.first == "rollout/version" || key.first == "rollout/dropped_groups" ||
                              key.first.rfind("time/", 0) == 0))))
      ++added;
  CHECK(ma.size() + added == mb.size());
  int compared = 0;
  for (const auto& [key, va] : ma) {
    const auto& name = key.first;
    if (name.rfind("time/", 0) == 0 || name.rfind("allreduce/", 0) == 0 || name.rfind("memory/", 0) == 0 ||
        name.find("per_s") != std::string::npos || name == "eval/seconds")
      continue;
    const auto it = mb.find(key);
    REQUIRE_MESSAGE(it != mb.end(), name << " at step " << key.second << " missing from " << b);
    // kl is a mean of log π − log π_ref, each log-prob rounded in fp32 (~1e-6 at these
    // magnitudes) in another reduction order on two ranks: an absolute tolerance.
    const double tol = name == "kl" ? 1e-5 : 1e-6 + 1e-4 * std::abs(va);
    CHECK_MESSAGE(std::abs(va - it->second) <= tol,
                  name << " at step " << key.second << ": " << va << " vs " << it->second);
    ++compared;
  }
  CHECK(compared > 20);
}

void check_same_weights(const std::string& dir_a, const std::string& dir_b) {
  rlft::policy::ModelOptions mo;
  const auto archs = rlft::policy::builtin_architectures();
  auto a = rlft::policy::load_model(dir_a, mo, archs);
  auto b = rlft::policy::load_model(dir_b, mo, archs);
  const auto pa = a->named_parameters(), pb = b->named_parameters();
  REQUIRE(pa.size() == pb.size());
  double worst = 0;
  std::string where;
  for (const auto& p : pa) {
    const auto& q = pb[p.key()];
    const double d = (p.value() - q).abs().max().item<double>();
    if (d > worst) worst = d, where = p.key();
  }
  CHECK_MESSAGE(worst < 1e-5, "largest weight difference " << worst << " in " << where);
}

std::string pid_of_rank(const std::string& log, int rank) {
  const std::string tag = fmt::format("rank {}/", rank);
  const auto at = log.find(tag);
  if (at == std::string::npos) return "";
  const auto p = log.find("pid ", at);
  return p == std::string::npos ? "" : log.substr(p + 4, log.find('\n', p) - p - 4);
}

bool wait_for(const std::function<bool()>& ready, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::map<std::string, std::string> rank_env(int rank, int world, int port) {
  return {{"RANK", std::to_string(rank)},
          {"WORLD_SIZE", std::to_string(world)},
          {"MASTER_ADDR", "127.0.0.1"},
          {"MASTER_PORT", std::to_string(port)}};
}

// Two torchrun-style ranks of an endless GRPO run (checkpoint every step); once step 2's
// checkpoint exists, `victim` is killed (SIGKILL). The survivor's exit code, log, and the seconds
// it took to exit.
struct Survivor {
  int code = 0;
  std::string text;
  double seconds = 0;
};

Survivor kill_one_of_two(const rlft::test::TempDir& tmp, const std::string& job, int victim) {
  const int port = rlft::test::free_port();
  const auto a = args({"train", job, "--set", "grpo.steps=100000", "--set", "checkpoint.every=1"}, named(tmp, "run"));
  const int pids[2] = {rlft::test::spawn_rlft(a, tmp.file("r0.log"), rank_env(0, 2, port)),
                       rlft::test::spawn_rlft(a, tmp.file("r1.log"), rank_env(1, 2, port))};
  REQUIRE(wait_for([&] { return fs::exists(tmp.file("run/checkpoints/step-000002")); }, 60));
  const auto t0 = std::chrono::steady_clock::now();
  kill(pids[victim], SIGKILL);
  CHECK(rlft::test::wait_child(pids[victim]) == 128 + SIGKILL);
  Survivor out;
  out.code = rlft::test::wait_child(pids[1 - victim]);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.text = read_all(tmp.file(fmt::format("r{}.log", 1 - victim)));
  return out;
}

// The survivor failed (exit 1) within the 20 s timeout, its error from `rank` naming `cause`.
void check_named(const Survivor& dead, const std::string& rank, const std::string& cause) {
  CHECK(dead.code == 1);
  CHECK_MESSAGE(contains(dead.text, "rlft: error: " + rank), dead.text);
  CHECK_MESSAGE(contains(dead.text, cause), dead.text);
  CHECK(dead.seconds < 20);
}

// The same under `rlft launch` (run "run", launch.log): rank 1 (its pid into `pid`) killed; the
// launcher's exit code and log.
Survivor kill_rank_1_under_launch(const rlft::test::TempDir& tmp, const std::string& job, std::string& pid) {
  const std::string log = tmp.file("launch.log");
  const int launcher = rlft::test::spawn_rlft(
      args({"launch", "--nproc", "2", "--", "train", job, "--set", "grpo.steps=100000", "--set", "checkpoint.every=1"},
           named(tmp, "run")),
      log);
  REQUIRE(wait_for([&] { return fs::exists(tmp.file("run/checkpoints/step-000002")); }, 60));
  pid = pid_of_rank(read_all(log), 1);
  REQUIRE(!pid.empty());
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(kill(std::stoi(pid), SIGKILL) == 0);
  Survivor out;
  out.code = rlft::test::wait_child(launcher);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.text = read_all(log);
  return out;
}

// An endless run `name` of `job` on two ranks under `rlft launch`; after step 3, SIGTERM to
// both ranks and the launcher, as a container stop or scancel does: the signal reaches every
// process and the launcher forwards it too, so each rank sees it twice and must still stop
// gracefully. Returns the step the run stopped after (its checkpoint checked).
int64_t sigterm_everyone(const rlft::test::TempDir& tmp, const std::string& job, const std::string& name) {
  const std::string log = tmp.file(name + ".log");
  const int launcher = rlft::test::spawn_rlft(
      args({"launch", "--nproc", "2", "--", "train", job, "--set", "grpo.steps=100000", "--set", "run.log_level=info"},
           named(tmp, name)),
      log);
  REQUIRE(wait_for([&] { return contains(read_all(log), "step 3/100000"); }, 60));
  for (int r = 0; r < 2; ++r) {
    const std::string pid = pid_of_rank(read_all(log), r);
    REQUIRE(!pid.empty());
    REQUIRE(kill(std::stoi(pid), SIGTERM) == 0);
  }
  REQUIRE(kill(launcher, SIGTERM) == 0);
  CHECK(rlft::test::wait_child(launcher) == 0);
  const auto text = read_all(log);
  const auto at = text.find("stopped after step ");
  REQUIRE_MESSAGE(at != std::string::npos, text);
  const int64_t step = std::stoll(text.substr(at + 19));
  CHECK(fs::exists(tmp.file(fmt::format("{}/checkpoints/step-{:06d}/trainer_state/state.json", name, step))));
  return step;
}

// A pairs file ("a + b =" → " a+b" over " a+b+1") and a tiny Qwen2 job learning from it with
// the trainer section `trainer` (its `pairs:` key is added).
std::string write_pairs_job(const rlft::test::TempDir& tmp, const std::string& trainer) {
  {
    std::ofstream pairs(tmp.file("pairs.jsonl"));
    for (int a = 0; a < 10; ++a)
      for (int b = 0; b < 4; ++b)
        pairs << fmt::format(R"({{"prompt": "{} + {} =", "chosen": " {}", "rejected": " {}"}})", a, b, a + b, a + b + 1)
              << "\n";
  }
  const std::string cfg = tmp.file("pairs.yaml");
  std::ofstream(cfg) << fmt::format(R"(run:
  seed: 1
  store: {0}/rlft.db
  threads: 1
  log_level: warn
model:
  architectures: [Qwen2ForCausalLM]
  vocab_size: 300
  hidden_size: 32
  intermediate_size: 64
  num_hidden_layers: 2
  num_attention_heads: 2
  num_key_value_heads: 1
  max_position_embeddings: 64
tokenizer:
  vocab_size: 290
optim:
  lr: 1.0e-3
{1}
  pairs: {0}/pairs.jsonl
)",
                                    tmp.path(), trainer);
  return cfg;
}

}  // namespace

TEST_CASE("GRPO on two ranks gives the metrics and weights of one rank with the same global batch") {
  rlft::test::TempDir tmp;
  const auto job = write_job(tmp);
  // prompts_per_step 4, mini_batches 2, micro_batch_rows 3: each optimizer step takes one
  // group from each rank, in micro-batches that do not divide the groups.
  const auto one = rlft::test::run_rlft(args({"train", job}, named(tmp, "one")));
  REQUIRE_MESSAGE(one.exit_code == 0, one.out << one.err);
  const auto two = rlft::test::run_rlft(args({"launch", "--nproc", "2", "--", "train", job}, named(tmp, "two")));
  REQUIRE_MESSAGE(two.exit_code == 0, two.out << two.err);
  CHECK(contains(two.err, "rlft launch: 2 ranks, rendezvous 127.0.0.1:"));
  check_same_metrics(tmp.file("rlft.db"), "one", "two");
  check_same_weights(tmp.file("one/final"), tmp.file("two/final"));
  // Rank 0 alone wrote the run: one store record, one set of rollouts per step.
  auto store = rlft::data::Store::open(tmp.file("rlft.db"), false);
  CHECK(store.find_run("two")->status == "finished");
  CHECK(store.metric_series(store.find_run("two")->id, "time/allreduce").size() == 4);
}

TEST_CASE("GRPO with LoRA on two ranks equals one rank; only the adapters' gradients are all-reduced") {
  rlft::test::TempDir tmp;
  const auto job = write_job(tmp, "lora:\n  rank: 4\n  alpha: 8\n");
  const std::vector<std::string> kl = {"--set", "grpo.loss.kl_beta=0.05"};
  const auto one = rlft::test::run_rlft(args(args({"train", job}, named(tmp, "one")), kl));
  REQUIRE_MESSAGE(one.exit_code == 0, one.out << one.err);
  const auto two =
      rlft::test::run_rlft(args(args({"launch", "--nproc", "2", "--", "train", job}, named(tmp, "two")), kl));
  REQUIRE_MESSAGE(two.exit_code == 0, two.out << two.err);
  check_same_metrics(tmp.file("rlft.db"), "one", "two");
  check_same_weights(tmp.file("one/final"), tmp.file("two/final"));  // base + adapter, each run's own base
  CHECK(fs::exists(tmp.file("two/final/adapter_config.json")));
  // The bytes all-reduced per step are the adapters' (fp32), not the model's.
  rlft::policy::ModelOptions mo;
  auto model = rlft::policy::load_model(tmp.file("two/final"), mo, rlft::policy::builtin_architectures());
  int64_t adapter = 0, all = 0;
  for (const auto& p : model->named_parameters()) {
    all += p.value().numel();
    if (p.key().find(".lora_") != std::string::npos) adapter += p.value().numel();
  }
  auto store = rlft::data::Store::open(tmp.file("rlft.db"), false);
  const auto mb = store.metric_series(store.find_run("two")->id, "allreduce/megabytes");
  REQUIRE(!mb.empty());
  MESSAGE("all-reduced per step: " << mb.front().value << " MB; adapters " << adapter * 4 / 1e6 << " MB of "
                                   << all * 4 / 1e6 << " MB");
  CHECK(mb.front().value > 0);
  // Two optimizer steps per GRPO step (grpo.mini_batches = 2), one all-reduce each.
  CHECK(mb.front().value <= 2 * adapter * 4 / 1e6 * 1.0001);
  CHECK(mb.front().value < all * 4 / 1e6);
}

TEST_CASE("SFT on two ranks equals one rank; an indivisible batch is a config error") {
  rlft::test::TempDir tmp;
  const auto job = write_job(tmp);
  const auto one = rlft::test::run_rlft(args({"sft", job}, named(tmp, "one")));
  REQUIRE_MESSAGE(one.exit_code == 0, one.out << one.err);
  const auto two = rlft::test::run_rlft(args({"launch", "--nproc", "2", "--", "sft", job}, named(tmp, "two")));
  REQUIRE_MESSAGE(two.exit_code == 0, two.out << two.err);
  check_same_metrics(tmp.file("rlft.db"), "one", "two");
  check_same_weights(tmp.file("one/final"), tmp.file("two/final"));

  const auto odd = rlft::test::run_rlft(
      args({"launch", "--nproc", "2", "--", "sft", job, "--set", "sft.batch_size=7"}, named(tmp, "odd")));
  CHECK(odd.exit_code == 1);
  CHECK_MESSAGE(contains(odd.err, "sft.batch_size = 7 must be divisible by the world size 2"), odd.err);
  CHECK_MESSAGE(contains(odd.err, "exited with code 2 first"), odd.err);
}

TEST_CASE("reward-model training on two ranks equals one rank") {
  rlft::test::TempDir tmp;
  const std::string cfg =
      write_pairs_job(tmp, "rm:\n  steps: 4\n  batch_size: 8\n  eval_fraction: 0.25\n  eval_every: 2");
  const auto one = rlft::test::run_rlft(args({"rm", "train", cfg}, named(tmp, "one")));
  REQUIRE_MESSAGE(one.exit_code == 0, one.out << one.err);
  const auto two = rlft::test::run_rlft(args({"launch", "--nproc", "2", "--", "rm", "train", cfg}, named(tmp, "two")));
  REQUIRE_MESSAGE(two.exit_code == 0, two.out << two.err);
  const auto ma = metrics_of(tmp.file("rlft.db"), "one"), mb = metrics_of(tmp.file("rlft.db"), "two");
  for (const char* name : {"rm/loss", "rm/accuracy", "grad_norm", "eval/rm_accuracy", "eval/rm_loss"}) {
    const auto a = ma.find({name, 4}), b = mb.find({name, 4});
    REQUIRE(a != ma.end());
    REQUIRE(b != mb.end());
    CHECK_MESSAGE(std::abs(a->second - b->second) <= 1e-6 + 1e-4 * std::abs(a->second), name);
  }
}

TEST_CASE("DPO on two ranks equals one rank: reference log-probs, metrics, held-out accuracy, weights") {
  rlft::test::TempDir tmp;
  const std::string cfg = write_pairs_job(tmp,
                                          "dpo:\n  steps: 4\n  batch_size: 8\n  micro_batch_pairs: 3\n  sft_weight: "
                                          "0.2\n  eval_fraction: 0.25\n  eval_every: 2");
  const auto one = rlft::test::run_rlft(args({"dpo", cfg}, named(tmp, "one")));
  REQUIRE_MESSAGE(one.exit_code == 0, one.out << one.err);
  const auto two = rlft::test::run_rlft(args({"launch", "--nproc", "2", "--", "dpo", cfg}, named(tmp, "two")));
  REQUIRE_MESSAGE(two.exit_code == 0, two.out << two.err);
  check_same_metrics(tmp.file("rlft.db"), "one", "two");
  check_same_weights(tmp.file("one/final"), tmp.file("two/final"));
}

TEST_CASE("a run started on two ranks resumes on one and ends as the uninterrupted run") {
  rlft::test::TempDir tmp;
  const auto job = write_job(tmp);
  REQUIRE(rlft::test::run_rlft(args({"train", job}, named(tmp, "whole"))).exit_code == 0);
  const auto first = rlft::test::run_rlft(
      args({"launch", "--nproc", "2", "--", "train", job, "--stop-after", "2"}, named(tmp, "split")));
  REQUIRE_MESSAGE(first.exit_code == 0, first.out << first.err);
  CHECK(contains(first.out, "stopped after step 2"));
  const auto rest = rlft::test::run_rlft(args({"train", job, "--resume"}, named(tmp, "split")));
  REQUIRE_MESSAGE(rest.exit_code == 0, rest.out << rest.err);
  check_same_metrics(tmp.file("rlft.db"), "whole", "split");
  check_same_weights(tmp.file("whole/final"), tmp.file("split/final"));
  // And back: one rank's checkpoint continued on two.
  REQUIRE(rlft::test::run_rlft(args({"train", job, "--stop-after", "2"}, named(tmp, "back"))).exit_code == 0);
  const auto more =
      rlft::test::run_rlft(args({"launch", "--nproc", "2", "--", "train", job, "--resume"}, named(tmp, "back")));
  REQUIRE_MESSAGE(more.exit_code == 0, more.out << more.err);
  check_same_metrics(tmp.file("rlft.db"), "whole", "back");
  check_same_weights(tmp.file("whole/final"), tmp.file("back/final"));
}

TEST_CASE("a rank killed mid-run: the launcher and the other rank exit non-zero naming it, within the timeout") {
  rlft::test::TempDir tmp;
  const auto job = write_job(tmp, "distributed:\n  timeout_s: 20\n");
  std::string pid;
  const auto dead = kill_rank_1_under_launch(tmp, job, pid);
  check_named(dead, "rank 0/2: ", "rank 1 has died or is frozen");
  CHECK_MESSAGE(contains(dead.text, "rank 1 (pid " + pid + ") was killed by signal 9"), dead.text);
  CHECK_MESSAGE(contains(dead.text, "then rank 0 exited with code 1"), dead.text);
}

TEST_CASE("torchrun-style ranks: a dead rank is named by the survivor within the timeout") {
  rlft::test::TempDir tmp;
  const auto job = write_job(tmp, "distributed:\n  timeout_s: 20\n");
  check_named(kill_one_of_two(tmp, job, 1), "rank 0/2: ", "rank 1 has died or is frozen (no heartbeat");
  // The run is marked failed in the store, its checkpoints intact.
  auto store = rlft::data::Store::open(tmp.file("rlft.db"), false);
  CHECK(store.find_run("run")->status == "failed");
}

TEST_CASE("ranks with different configs or different initial weights stop at start, naming the difference") {
  rlft::test::TempDir tmp;
  const auto job = write_job(tmp);
  {
    const int port = rlft::test::free_port();
    const int r0 =
        rlft::test::spawn_rlft(args({"sft", job}, named(tmp, "m")), tmp.file("m0.log"), rank_env(0, 2, port));
    const int r1 = rlft::test::spawn_rlft(args({"sft", job, "--set", "optim.lr=0.5"}, named(tmp, "m")),
                                          tmp.file("m1.log"), rank_env(1, 2, port));
    CHECK(rlft::test::wait_child(r0) == 2);
    CHECK(rlft::test::wait_child(r1) == 2);
    for (const char* f : {"m0.log", "m1.log"}) {
      const auto text = read_all(tmp.file(f));
      CHECK_MESSAGE(contains(text, "config hash differs between ranks: rank 0 has"), text);
      CHECK_MESSAGE(contains(text, "rank 0 has '  lr: 1.0e-3', rank 1 has '  lr: 0.5'"), text);
    }
    CHECK_FALSE(fs::exists(tmp.file("rlft.db")));  // nothing was started
  }
  {
    // The same config (policy.path relative) started in two directories holding different
    // models: equal config hashes, different weights.
    for (const char* d : {"a", "b"}) {
      fs::create_directories(tmp.file(d));
      const auto r = rlft::test::run_rlft({"model", "init", job, "-o", tmp.file(std::string(d) + "/model"), "--seed",
                                           d == std::string("a") ? "1" : "2"});
      REQUIRE_MESSAGE(r.exit_code == 0, r.out << r.err);
    }
    const int port = rlft::test::free_port();
    std::vector<std::future<rlft::test::ProcessResult>> ranks;
    for (int r = 0; r < 2; ++r) {
      const std::string cmd = fmt::format("cd {} && exec {} sft {} --set policy.path=model --set run.name=w",
                                          tmp.file(r == 0 ? "a" : "b"), RLFT_BINARY, job);
      const auto env = rank_env(r, 2, port);
      ranks.push_back(std::async(std::launch::async, [cmd, env] {
        return rlft::test::run_process({"sh", "-c", cmd}, env);
      }));
    }
    for (auto& f : ranks) {
      const auto r = f.get();
      CHECK(r.exit_code == 1);
      CHECK_MESSAGE(contains(r.err, "initial weights hash differs between ranks: rank 0 has"), r.err);
    }
  }
}

TEST_CASE("SIGTERM to the job: the ranks stop after the same step and rank 0 leaves a checkpoint") {
  rlft::test::TempDir tmp;
  const auto job = write_job(tmp);
  const int64_t step = sigterm_everyone(tmp, job, "run");
  CHECK(step >= 3);
  CHECK(fs::exists(tmp.file(fmt::format("run/checkpoints/step-{:06d}/model.safetensors", step))));
  auto store = rlft::data::Store::open(tmp.file("rlft.db"), false);
  CHECK(store.find_run("run")->status == "interrupted");
  // It continues, here on one rank.
  const auto more = rlft::test::run_rlft(
      args({"train", job, "--resume", "--set", "grpo.steps=100000", "--stop-after", std::to_string(step + 1)},
           named(tmp, "run")));
  CHECK_MESSAGE(more.exit_code == 0, more.out << more.err);
  CHECK(contains(more.out, fmt::format("stopped after step {}", step + 1)));
}

TEST_CASE("rollout ranks: sync on a rollout rank gives one rank's run, async k = 1 gives in-process async's") {
  rlft::test::TempDir tmp;
  const auto job = write_job(tmp);
  const std::vector<std::string> split = {"--set", "distributed.rollout_ranks=1"};
  const std::vector<std::string> async = {"--set", "grpo.rollout.mode=async", "--set", "grpo.rollout.max_staleness=1"};
  REQUIRE(rlft::test::run_rlft(args({"train", job}, named(tmp, "one"))).exit_code == 0);
  // One trainer rank and one rollout rank: the rollout rank samples every group with the
  // trainer's current weights (the same per-prompt seeds), so nothing differs.
  const auto two =
      rlft::test::run_rlft(args(args({"launch", "--nproc", "2", "--", "train", job}, named(tmp, "two")), split));
  REQUIRE_MESSAGE(two.exit_code == 0, two.out << two.err);
  check_same_metrics(tmp.file("rlft.db"), "one", "two", true);
  check_same_weights(tmp.file("one/final"), tmp.file("two/final"));
  // Two trainer ranks fed by one rollout rank, and one trainer rank fed by two.
  for (const auto& [nproc, rollout] : std::vector<std::pair<int, int>>{{3, 1}, {3, 2}}) {
    const std::string name = fmt::format("t{}r{}", nproc - rollout, rollout);
    const auto r = rlft::test::run_rlft(args({"launch", "--nproc", std::to_string(nproc), "--", "train", job, "--set",
                                              fmt::format("distributed.rollout_ranks={}", rollout)},
                                             named(tmp, name)));
    REQUIRE_MESSAGE(r.exit_code == 0, r.out << r.err);
    check_same_metrics(tmp.file("rlft.db"), "one", name, true);
  }
  // Async, k = 1, under LoRA (the adapters alone travel): the rollout rank holds the weights
  // of one step back, as the in-process rollout thread does.
  const std::vector<std::string> lora = {"--set", "lora.rank=4", "--set", "lora.alpha=8"};
  const auto local = rlft::test::run_rlft(args(args(args({"train", job}, named(tmp, "local")), async), lora));
  REQUIRE_MESSAGE(local.exit_code == 0, local.out << local.err);
  const auto remote = rlft::test::run_rlft(
      args(args(args(args({"launch", "--nproc", "2", "--", "train", job}, named(tmp, "remote")), async), lora), split));
  REQUIRE_MESSAGE(remote.exit_code == 0, remote.out << remote.err);
  check_same_metrics(tmp.file("rlft.db"), "local", "remote");
  check_same_weights(tmp.file("local/final"), tmp.file("remote/final"));
  CHECK(rlft::test::metric_at(tmp.file("rlft.db"), "remote", "rollout/version", 3) == 1.0);
  CHECK(rlft::test::metric_at(tmp.file("rlft.db"), "remote", "rollout/staleness", 3) == 1.0);
  CHECK(rlft::test::metric_at(tmp.file("rlft.db"), "remote", "rollout/ranks", 0) == 1.0);
}

TEST_CASE("rollout ranks: a killed rollout rank is named by the trainer, a stop reaches the rollout rank") {
  rlft::test::TempDir tmp;
  const auto job = write_job(tmp, "distributed:\n  timeout_s: 20\n  rollout_ranks: 1\n");
  {
    std::string pid;
    check_named(kill_rank_1_under_launch(tmp, job, pid), "rank 0/2", "rank 1 has died or is frozen");
  }
  {
    // SIGTERM to every process: the trainer checkpoints and stops, and tells the rollout rank,
    // which may be waiting for weights; both exit 0. The run continues on rollout ranks.
    const int64_t step = sigterm_everyone(tmp, job, "t");
    const auto more = rlft::test::run_rlft(args({"launch", "--nproc", "2", "--", "train", job, "--resume", "--set",
                                                 "grpo.steps=100000", "--stop-after", std::to_string(step + 2)},
                                                named(tmp, "t")));
    CHECK_MESSAGE(more.exit_code == 0, more.out << more.err);
    CHECK(contains(more.out, fmt::format("stopped after step {}", step + 2)));
  }
}

TEST_CASE("rollout ranks: a dead rank 0 is named by the rollout rank; bad splits are config errors") {
  rlft::test::TempDir tmp;
  const auto job = write_job(tmp, "distributed:\n  timeout_s: 20\n  rollout_ranks: 1\n");
  check_named(kill_one_of_two(tmp, job, 0), "rank 1/2", "rank 0 has died");

  // Ranks that would split differently (the key is outside the config hash): named at start.
  {
    const int port = rlft::test::free_port();
    const int r0 =
        rlft::test::spawn_rlft(args({"train", job}, named(tmp, "split")), tmp.file("s0.log"), rank_env(0, 2, port));
    const int r1 =
        rlft::test::spawn_rlft(args({"train", job, "--set", "distributed.rollout_ranks=0"}, named(tmp, "split")),
                               tmp.file("s1.log"), rank_env(1, 2, port));
    CHECK(rlft::test::wait_child(r0) == 1);
    CHECK(rlft::test::wait_child(r1) == 1);
    for (const char* f : {"s0.log", "s1.log"})
      CHECK_MESSAGE(contains(read_all(tmp.file(f)),
                             "distributed.rollout_ranks differs between ranks: rank 0 has 1, rank(s) 1 differ"),
                    read_all(tmp.file(f)));
  }
  // Every rank a rollout rank: nothing would train. Refused before the run is created.
  const auto all = rlft::test::run_rlft(args({"train", job}, named(tmp, "all")));
  CHECK(all.exit_code == 2);
  CHECK_MESSAGE(contains(all.err, "distributed.rollout_ranks = 1 with 1 rank(s) leaves no trainer rank"), all.err);
  CHECK_FALSE(fs::exists(tmp.file("all")));
  const auto sft = rlft::test::run_rlft(args({"sft", job}, named(tmp, "sft")));
  CHECK(sft.exit_code == 2);
  CHECK_MESSAGE(contains(sft.err, "distributed.rollout_ranks = 1: splits the ranks of a GRPO run"), sft.err);
  const auto negative =
      rlft::test::run_rlft(args({"train", job, "--set", "distributed.rollout_ranks=-1"}, named(tmp, "neg")));
  CHECK_MESSAGE(contains(negative.err, "distributed.rollout_ranks = -1: must be >= 0"), negative.err);
  const auto workers = rlft::test::run_rlft(
      args({"train", job, "--set", "grpo.rollout.mode=async", "--set", "grpo.rollout.workers=2"}, named(tmp, "w")));
  CHECK_MESSAGE(contains(workers.err, "grpo.rollout.workers must be 1"), workers.err);
}

TEST_CASE("rlft launch: usage errors") {
  const auto none = rlft::test::run_rlft({"launch", "--nproc", "2"});
  CHECK(none.exit_code == 2);
  const auto zero = rlft::test::run_rlft({"launch", "--nproc", "0", "--", "doctor"});
  CHECK(zero.exit_code == 2);
  CHECK_MESSAGE(contains(zero.err, "--nproc 0: must be >= 1"), zero.err);
  const auto missing = rlft::test::run_rlft({"launch", "--nproc", "1", "--", "sft", "/nonexistent.yaml"});
  CHECK(missing.exit_code == 1);
  CHECK_MESSAGE(contains(missing.err, "rlft launch: rank 0 (pid"), missing.err);
  CHECK_MESSAGE(contains(missing.err, "exited with code 2 first"), missing.err);
}
