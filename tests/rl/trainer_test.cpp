// The GRPO and SFT trainers end to end on a tiny MoE: on-policy ratios, bitwise resume,
// loss scaling with an injected overflow, SIGINT and kill -9 against a real rlft process.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/threads.h"
#include "data/store.h"
#include "policy/arch/arch.h"
#include "policy/checkpoint/checkpoint.h"
#include "policy/model_io.h"
#include "rl/grpo_trainer.h"
#include "rl/optimizer.h"
#include "rl/optimizer_step.h"
#include "rl/precision.h"
#include "rl/sequence_batch.h"
#include "rl/sft_trainer.h"
#include "rl/train_state.h"
#include "tests/rl/trainer_test_util.h"
#include "tests/support/process.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

namespace fs = std::filesystem;
using namespace rlft;

namespace {

// The metrics of `b` equal `a`'s bitwise (comparable_metrics), and so do the weights of their
// final directories.
void check_bitwise_same_runs(const test::TempDir& tmp, const std::string& a, const std::string& b) {
  const auto ma = test::comparable_metrics(tmp.file("rlft.db"), a);
  const auto mb = test::comparable_metrics(tmp.file("rlft.db"), b);
  CHECK(ma.size() == mb.size());
  CHECK(ma.size() > 40);
  for (const auto& [key, value] : ma) {
    auto it = mb.find(key);
    REQUIRE_MESSAGE(it != mb.end(), "missing " << key.second << " at step " << key.first);
    CHECK_MESSAGE(it->second == value, key.second << " at step " << key.first << ": " << it->second << " vs " << value);
  }
  const auto wa = checkpoint::read_checkpoint(tmp.file(a + "/final"));
  const auto wb = checkpoint::read_checkpoint(tmp.file(b + "/final"));
  REQUIRE(wa.size() == wb.size());
  for (const auto& [name, t] : wa) CHECK_MESSAGE(t.equal(wb.at(name)), name);
}

std::string run_status(const std::string& store_path, const std::string& run) {
  auto store = data::Store::open(store_path, false);
  const auto r = store.find_run(run);
  return r ? r->status : "";
}

}  // namespace

TEST_CASE("a sequence batch left-pads, masks only completion tokens and scatters per-token values back") {
  std::vector<rl::Sequence> seqs(2);
  seqs[0].prompt = {5, 6, 7};
  seqs[0].completion = {8, 9};
  seqs[1].prompt = {4};
  seqs[1].completion = {3, 2, 1};
  seqs[1].token_mask = {1, 0, 1};
  const auto b = rl::make_sequence_batch(seqs, at::kCPU);
  CHECK(b.tokens.sizes() == at::IntArrayRef({2, 5}));
  CHECK(b.tokens[0].equal(at::tensor({5, 6, 7, 8, 9}, at::kLong)));
  CHECK(b.tokens[1].equal(at::tensor({0, 4, 3, 2, 1}, at::kLong)));
  CHECK(b.attention_mask[1].equal(at::tensor({0, 1, 1, 1, 1}, at::kLong).to(at::kBool)));
  // Column j holds the log-prob of token j + 1: row 0's completion is tokens 3, 4 -> columns 2, 3.
  CHECK(b.mask[0].equal(at::tensor({0.f, 0.f, 1.f, 1.f})));
  CHECK(b.mask[1].equal(at::tensor({0.f, 1.f, 0.f, 1.f})));
  CHECK(b.completion[1].equal(at::tensor({0, 1, 1, 1}, at::kLong).to(at::kBool)));
  // Row-aligned values [B, C]: row i's completion values first.
  const auto v = at::tensor({0.5f, 0.25f, 0.f, 1.f, 2.f, 3.f}).reshape({2, 3});
  const auto t = b.scatter(v);
  CHECK(t[0].equal(at::tensor({0.f, 0.f, 0.5f, 0.25f})));
  CHECK(t[1].equal(at::tensor({0.f, 1.f, 2.f, 3.f})));
  auto back = at::full({2, 3}, -1.f);
  b.gather_into(t, back);
  CHECK(back.equal(at::tensor({0.5f, 0.25f, -1.f, 1.f, 2.f, 3.f}).reshape({2, 3})));
  // A micro-batch is a row range of the step's sequences.
  const auto second = rl::make_sequence_batch(seqs, rl::RowRange{1, 2}, at::kCPU);
  CHECK(second.tokens.equal(at::tensor({4, 3, 2, 1}, at::kLong).reshape({1, 4})));
  seqs[1].token_mask = {1};
  CHECK_THROWS_AS(rl::make_sequence_batch(seqs, at::kCPU), Error);
}

TEST_CASE("GRPO on-policy: the ratio is exactly 1 with recomputed old log-probs, within 1e-5 with rollout's") {
  apply_thread_count(1);
  test::TempDir tmp;
  for (const bool recompute : {true, false}) {
    const std::string name = recompute ? "recompute" : "behaviour";
    // recompute_old_logp: auto recomputes in fp32 only when asked; false is rollout's numbers.
    auto parsed = test::tiny_job(tmp, name, rl::JobKind::kGrpo,
                                 {"grpo.steps=1", "grpo.mini_batches=1", "grpo.micro_batch_rows=0",
                                  fmt::format("grpo.recompute_old_logp={}", recompute ? "true" : "auto")});
    test::TinyRun run(std::move(parsed), "train", false);
    const auto r = run.grpo();
    CHECK(r.steps == 1);
    const auto db = tmp.file("rlft.db");
    const double ratio = test::metric_at(db, name, "ratio_mean", 1);
    if (recompute) {
      CHECK(ratio == 1.0);
      CHECK(test::metric_at(db, name, "clip_fraction", 1) == 0.0);
    } else {
      CHECK(std::abs(ratio - 1.0) <= 1e-5);
      CHECK(test::metric_at(db, name, "approx_kl_old", 1) <= 1e-9);
    }
    CHECK(run_status(db, name) == "finished");
    CHECK(fs::exists(fs::path(tmp.path()) / name / "final" / "config.json"));
    CHECK(fs::exists(fs::path(tmp.path()) / name / "final" / "tokenizer.json"));
  }
}

TEST_CASE("GRPO under bf16 autocast: on policy the ratio is exactly 1 (old log-probs are the trainer's own)") {
  apply_thread_count(1);
  test::TempDir tmp;
  // auto recomputes under bf16; rollout itself runs under the same autocast, so its log-probs
  // (the behaviour ones, kept for truncated IS) are the same quantity up to bf16 rounding.
  for (const std::string mode : {"auto", "false"}) {
    const std::string name = "bf16-" + mode;
    test::TinyRun run(
        test::tiny_job(tmp, name, rl::JobKind::kGrpo,
                       {"grpo.steps=1", "grpo.mini_batches=1", "grpo.micro_batch_rows=0", "precision.compute=bf16",
                        "grpo.recompute_old_logp=" + mode, "grpo.loss.behaviour_is_cap=1.0"}),
        "train", false);
    CHECK(run.grpo().steps == 1);
    const auto db = tmp.file("rlft.db");
    const double ratio = test::metric_at(db, name, "ratio_mean", 1);
    const double capped = test::metric_at(db, name, "is_capped_fraction", 1);
    MESSAGE(name << ": ratio_mean " << ratio << ", approx_kl_old " << test::metric_at(db, name, "approx_kl_old", 1)
                 << ", share of tokens with pi_old / pi_behaviour > 1: " << capped);
    if (mode == "auto") {
      CHECK(ratio == 1.0);
      CHECK(test::metric_at(db, name, "approx_kl_old", 1) == 0.0);
      CHECK(capped < 0.9);  // the weights are near 1, on both sides
    } else {
      CHECK(capped == 0.0);  // old = behaviour: every weight is exactly 1
    }
  }
  CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad", rl::JobKind::kGrpo, {"grpo.recompute_old_logp=sometimes"}),
                       doctest::Contains("grpo.recompute_old_logp = sometimes: must be auto, true or false"),
                       ConfigError);
}

TEST_CASE("a resumed GRPO run continues bitwise like the uninterrupted one: metrics and weights") {
  apply_thread_count(1);
  test::TempDir tmp;
  const std::vector<std::string> common = {"grpo.steps=4", "checkpoint.every=2"};
  {
    test::TinyRun run(test::tiny_job(tmp, "whole", rl::JobKind::kGrpo, common), "train", false);
    CHECK(run.grpo().steps == 4);
  }
  {
    test::TinyRun run(test::tiny_job(tmp, "split", rl::JobKind::kGrpo, common), "train", false);
    const auto r = run.grpo(2);
    CHECK(r.interrupted);
    CHECK(r.steps == 2);
  }
  CHECK(run_status(tmp.file("rlft.db"), "split") == "interrupted");
  {
    test::TinyRun run(test::tiny_job(tmp, "split", rl::JobKind::kGrpo, common), "train", true);
    CHECK(fs::path(run.job.resume_from()).filename() == "step-000002");
    CHECK(run.grpo().steps == 4);
  }
  CHECK(run_status(tmp.file("rlft.db"), "split") == "finished");
  check_bitwise_same_runs(tmp, "whole", "split");
  // Resuming with another config is refused.
  CHECK_THROWS_WITH_AS(
      test::TinyRun(test::tiny_job(tmp, "split", rl::JobKind::kGrpo, {"grpo.steps=5", "checkpoint.every=2"}), "train",
                    true),
      doctest::Contains("config differs"), Error);
}

TEST_CASE("grpo.ref_reset_every: the KL reference becomes the policy, and a resumed run restores it bitwise") {
  apply_thread_count(1);
  test::TempDir tmp;
  const std::vector<std::string> common = {"grpo.steps=4",           "grpo.mini_batches=1", "grpo.micro_batch_rows=0",
                                           "grpo.loss.kl_beta=0.05", "checkpoint.every=0",  "eval.enabled=false"};
  auto with = [&common](std::vector<std::string> more) {
    more.insert(more.begin(), common.begin(), common.end());
    return more;
  };
  {
    test::TinyRun run(test::tiny_job(tmp, "fixed", rl::JobKind::kGrpo, common), "train", false);
    CHECK(run.grpo().steps == 4);
  }
  {
    test::TinyRun run(test::tiny_job(tmp, "reset", rl::JobKind::kGrpo, with({"grpo.ref_reset_every=2"})), "train",
                      false);
    CHECK(run.grpo().steps == 4);
  }
  const auto db = tmp.file("rlft.db");
  // Steps 1-2 are the same runs. Step 3 starts from the policy the reference was reset to: on
  // policy (one epoch, one mini-batch), its KL to the reference is exactly 0.
  CHECK(test::metric_at(db, "reset", "kl", 2) == test::metric_at(db, "fixed", "kl", 2));
  CHECK(test::metric_at(db, "fixed", "kl", 2) > 0.0);
  CHECK(test::metric_at(db, "fixed", "kl", 3) > 0.0);
  CHECK(test::metric_at(db, "reset", "kl", 3) == 0.0);
  CHECK(test::metric_at(db, "reset", "kl", 4) > 0.0);

  // Stopped after step 3 (one reset behind it), resumed: the checkpoint holds the reference.
  {
    test::TinyRun run(test::tiny_job(tmp, "split", rl::JobKind::kGrpo, with({"grpo.ref_reset_every=2"})), "train",
                      false);
    CHECK(run.grpo(3).interrupted);
  }
  CHECK(fs::exists(tmp.file("split/checkpoints/step-000003/trainer_state/reference.safetensors")));
  {
    test::TinyRun run(test::tiny_job(tmp, "split", rl::JobKind::kGrpo, with({"grpo.ref_reset_every=2"})), "train",
                      true);
    CHECK(run.grpo().steps == 4);
  }
  const auto a = test::comparable_metrics(db, "reset");
  const auto b = test::comparable_metrics(db, "split");
  CHECK(a.size() == b.size());
  for (const auto& [key, value] : a)
    CHECK_MESSAGE(b.at(key) == value, key.second << " at step " << key.first << ": " << b.at(key) << " vs " << value);

  CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad1", rl::JobKind::kGrpo, {"grpo.ref_reset_every=2"}),
                       doctest::Contains("grpo.ref_reset_every = 2: resets the KL reference, and loss.kl_beta = 0"),
                       ConfigError);
  CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad2", rl::JobKind::kGrpo,
                                      {"grpo.ref_reset_every=2", "grpo.loss.kl_beta=0.1"}, "lora:\n  rank: 2\n"),
                       doctest::Contains("grpo.ref_reset_every"), ConfigError);
  CHECK_THROWS_WITH_AS(
      test::tiny_job(tmp, "bad3", rl::JobKind::kGrpo, {"grpo.ref_mixup_alpha=0", "grpo.loss.kl_beta=0.1"}),
      doctest::Contains("grpo.ref_mixup_alpha"), ConfigError);
}

TEST_CASE("a resumed SFT run of the default MoE (MTP, experts that get no tokens) continues bitwise") {
  test::TempDir tmp;
  const std::string cfg = std::string(RLFT_SOURCE_DIR) + "/configs/default/sft.yaml";
  auto sft = [&](const std::string& name, std::vector<std::string> more) {
    std::vector<std::string> a = {"sft",   cfg,
                                  "--set", "sft.steps=20",
                                  "--set", "checkpoint.every=10",
                                  "--set", "run.threads=1",
                                  "--set", "eval.enabled=false",
                                  "--set", "run.store=" + tmp.file("rlft.db"),
                                  "--set", "run.name=" + name,
                                  "--set", "run.output_dir=" + tmp.file(name)};
    a.insert(a.end(), more.begin(), more.end());
    const auto r = test::run_rlft(a);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  };
  sft("whole", {});
  sft("split", {"--stop-after", "10"});
  sft("split", {"--resume"});
  check_bitwise_same_runs(tmp, "whole", "split");
}

TEST_CASE("loss scaling: an injected overflow skips the step, backs the scale off, and training recovers") {
  apply_thread_count(1);
  test::TempDir tmp;
  // Optimizer steps 1-2 belong to RL step 1 (two mini-batches); inject inf into step 2.
  test::TinyRun run(
      test::tiny_job(tmp, "scaled", rl::JobKind::kGrpo, {"grpo.steps=3", "checkpoint.every=0"},
                     "precision:\n  loss_scaling: \"on\"\n  init_scale: 1024.0\n  inject_nonfinite: [2]\n"),
      "train", false);
  const auto before = run.job.model()->named_parameters(true)["model.layers.1.mlp.experts.0.gate_proj.weight"].clone();
  run.grpo();
  const auto db = tmp.file("rlft.db");
  CHECK(test::metric_at(db, "scaled", "skipped_steps", 1) == 1.0);
  CHECK(test::metric_at(db, "scaled", "skipped_steps", 3) == 1.0);
  CHECK(test::metric_at(db, "scaled", "loss_scale", 1) == 512.0);  // backed off by 0.5 after step 2
  for (const auto& p : run.job.model()->parameters()) CHECK(at::isfinite(p).all().item<bool>());
  const auto after = run.job.model()->named_parameters(true)["model.layers.1.mlp.experts.0.gate_proj.weight"];
  CHECK_FALSE(before.equal(after));
}

TEST_CASE("bf16 compute under autocast trains with fp32 master weights and an fp32 router") {
  apply_thread_count(1);
  test::TempDir tmp;
  test::TinyRun run(
      test::tiny_job(tmp, "bf16", rl::JobKind::kSft, {"sft.steps=12", "optim.lr=3e-3", "checkpoint.every=0"},
                     "precision:\n  compute: bf16\n"),
      "sft", false);
  run.sft();
  for (const auto& p : run.job.model()->parameters()) {
    CHECK((p.scalar_type() == at::kFloat));  // master weights stay fp32
    CHECK(at::isfinite(p).all().item<bool>());
  }
  const auto db = tmp.file("rlft.db");
  CHECK(test::metric_at(db, "bf16", "sft/loss", 12) < test::metric_at(db, "bf16", "sft/loss", 1));
  // Under the guard a linear runs in bf16, the router's product stays fp32.
  rl::AutocastGuard guard(rl::Compute::kBf16, at::kCPU);
  const auto x = at::randn({3, 32});
  CHECK((at::linear(x, at::randn({4, 32})).scalar_type() == at::kBFloat16));
  auto& gate = run.job.model()->model->decoder_layers[1]->moe->gate;
  CHECK((gate->forward(x).scalar_type() == at::kFloat));
}

TEST_CASE("fp16 compute is refused on CPU with a clear error") {
  test::TempDir tmp;
  test::TinyRun run(test::tiny_job(tmp, "fp16", rl::JobKind::kSft, {"sft.steps=1"}, "precision:\n  compute: fp16\n"),
                    "sft", false);
  CHECK_THROWS_WITH_AS(run.sft(), doctest::Contains("fp16 autocast needs a CUDA device"), ConfigError);
}

TEST_CASE("too many non-finite steps in a row stop the run with a clear error") {
  apply_thread_count(1);
  test::TempDir tmp;
  test::TinyRun run(test::tiny_job(tmp, "diverge", rl::JobKind::kGrpo, {"grpo.steps=3"},
                                   "precision:\n  inject_nonfinite: [1, 2, 3]\n  max_consecutive_skips: 3\n"),
                    "train", false);
  CHECK_THROWS_WITH_AS(run.grpo(), doctest::Contains("3 optimizer steps in a row had non-finite gradients"), Error);
}

TEST_CASE("SFT: the loss falls on the demonstrations, with the MTP loss, and a checkpoint opens as a model") {
  apply_thread_count(1);
  test::TempDir tmp;
  test::TinyRun run(
      test::tiny_job(tmp, "sft", rl::JobKind::kSft, {"sft.steps=30", "optim.lr=3e-3", "checkpoint.every=0"}), "sft",
      false);
  const auto r = run.sft();
  CHECK(r.steps == 30);
  const auto db = tmp.file("rlft.db");
  const double first = test::metric_at(db, "sft", "sft/loss", 1), last = test::metric_at(db, "sft", "sft/loss", 30);
  CHECK(last < 0.6 * first);
  CHECK(test::metric_at(db, "sft", "sft/mtp_loss", 30) > 0.0);
  CHECK(test::metric_at(db, "sft", "eval/accuracy", 30) >= 0.0);
  policy::ModelOptions mo;
  auto loaded = policy::load_model(r.final_dir, mo, policy::builtin_architectures());
  CHECK(loaded->config().eos_token_id == std::vector<int64_t>{run.job.eos_id()});
}

TEST_CASE("bad training options are config errors naming the key") {
  test::TempDir tmp;
  CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad1", rl::JobKind::kGrpo, {"grpo.group_size=1"}),
                       doctest::Contains("grpo.group_size"), ConfigError);
  CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad2", rl::JobKind::kGrpo, {"grpo.mini_batches=3"}),
                       doctest::Contains("must divide prompts_per_step"), ConfigError);
  CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad3", rl::JobKind::kGrpo, {"grpo.stepz=3"}), doctest::Contains("steps"),
                       ConfigError);
  CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad4", rl::JobKind::kGrpo, {"grpo.loss.aggregation=mean"}),
                       doctest::Contains("grpo.loss.aggregation"), ConfigError);
  CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad5", rl::JobKind::kGrpo, {"eval.accuracy_reward=nope"}),
                       doctest::Contains("eval.accuracy_reward"), ConfigError);
}

TEST_CASE("rlft train: SIGINT finishes the step, writes a checkpoint, exits 0; --resume completes the run") {
  test::TempDir tmp;
  const auto cfg = tmp.write("sig.yaml", test::tiny_job_yaml(tmp.path(), "sig"));
  const auto log = tmp.file("sig.log");
  const int pid = test::spawn_rlft(
      {"train", cfg, "--set", "grpo.steps=40", "--set", "checkpoint.every=0", "--set", "run.log_level=info"}, log);
  // Wait for the first step's console line, then interrupt.
  bool started = false;
  for (int i = 0; i < 600 && !started; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream in(log);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    started = text.find("step 1/40") != std::string::npos;
  }
  REQUIRE(started);
  kill(pid, SIGINT);
  CHECK(test::wait_child(pid) == 0);
  const auto ckpt = rl::latest_checkpoint(tmp.file("sig"));
  REQUIRE_FALSE(ckpt.empty());
  CHECK(run_status(tmp.file("rlft.db"), "sig") == "interrupted");
  const auto r = test::run_rlft({"train", cfg, "--set", "grpo.steps=40", "--set", "checkpoint.every=0", "--set",
                                 "run.log_level=info", "--resume"});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  CHECK(run_status(tmp.file("rlft.db"), "sig") == "finished");
}

TEST_CASE("kill -9 while checkpoints are being written leaves the newest complete checkpoint loadable") {
  test::TempDir tmp;
  const auto cfg = tmp.write("k9.yaml", test::tiny_job_yaml(tmp.path(), "k9"));
  std::mt19937 rng(11);
  for (int round = 0; round < 3; ++round) {
    std::vector<std::string> args = {
        "train", cfg,           "--set", "grpo.steps=1000", "--set", "checkpoint.every=1", "--set", "checkpoint.keep=2",
        "--set", "eval.every=0"};
    if (round > 0) args.push_back("--resume");  // later rounds continue the killed run
    const int pid = test::spawn_rlft(args, tmp.file("k9.log"));
    // Let it write a few checkpoints, then kill it at a random moment.
    for (int i = 0; i < 600 && rl::latest_checkpoint(tmp.file("k9")).empty(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 600));
    kill(pid, SIGKILL);
    CHECK(test::wait_child(pid) == 128 + SIGKILL);
    const auto ckpt = rl::latest_checkpoint(tmp.file("k9"));
    REQUIRE_FALSE(ckpt.empty());
    policy::ModelOptions mo;
    auto model = policy::load_model(ckpt, mo, policy::builtin_architectures());
    std::vector<std::pair<std::string, at::Tensor>> params;
    for (const auto& p : model->named_parameters(true)) params.emplace_back(p.key(), p.value());
    rl::Optimizer opt(params, {});
    const auto state = rl::load_trainer_state(ckpt, opt);
    CHECK(state.step >= 1);
  }
  const auto r = test::run_rlft({"train", cfg, "--set", "grpo.steps=1000", "--set", "checkpoint.every=1", "--set",
                                 "checkpoint.keep=2", "--set", "eval.every=0", "--resume", "--stop-after", "1"});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
}

TEST_CASE("GSPO with a length-weighted aggregation is warned about, naming the key to use") {
  test::TempDir tmp;
  const auto cfg = tmp.write("job.yaml", test::tiny_job_yaml(tmp.path(), "gspo"));
  auto run = [&](const std::string& aggregation) {
    return test::run_rlft({"train", cfg, "--set", "grpo.steps=1", "--set", "grpo.loss.ratio_level=sequence", "--set",
                           "grpo.loss.aggregation=" + aggregation, "--set", "run.log_level=warn", "--set",
                           "run.name=gspo-" + aggregation, "--set", "run.output_dir=" + tmp.file(aggregation)});
  };
  const auto tokens = run("token_mean");
  REQUIRE_MESSAGE(tokens.exit_code == 0, tokens.err);
  CHECK(tokens.err.find("GSPO's objective is a mean over sequences (aggregation: seq_mean_token_mean)") !=
        std::string::npos);
  const auto seqs = run("seq_mean_token_mean");
  REQUIRE_MESSAGE(seqs.exit_code == 0, seqs.err);
  CHECK(seqs.err.find("GSPO") == std::string::npos);
}
