// The trainers with LoRA (policy/lora.h) end to end on the tiny MoE: GRPO with a KL
// reference that is the policy with adapters off, bitwise resume, on-policy ratios with
// trained adapters, only adapter state in the optimizer, the base left as it was, PEFT
// directories in checkpoints and final/, SFT and reward-model training with adapters.
#include <filesystem>
#include <map>

#include "core/threads.h"
#include "policy/arch/arch.h"
#include "policy/checkpoint/checkpoint.h"
#include "policy/checkpoint/safetensors.h"
#include "policy/lora.h"
#include "policy/model_io.h"
#include "reward/reward_model.h"
#include "tests/rl/trainer_test_util.h"
#include "tests/support/process.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

namespace fs = std::filesystem;
using namespace rlft;

namespace {

const std::string kLoraSection = "lora:\n  rank: 4\n  alpha: 8\n";

}  // namespace

TEST_CASE("GRPO with LoRA: KL against the adapters-off policy, bitwise resume, PEFT files, the base untouched") {
  apply_thread_count(1);
  test::TempDir tmp;
  const std::vector<std::string> common = {"grpo.steps=4", "checkpoint.every=2", "grpo.loss.kl_beta=0.05"};
  {
    test::TinyRun run(test::tiny_job(tmp, "whole", rl::JobKind::kGrpo, common, kLoraSection), "train", false);
    REQUIRE(run.job.model()->lora);
    CHECK(run.grpo().steps == 4);
  }
  {
    test::TinyRun run(test::tiny_job(tmp, "split", rl::JobKind::kGrpo, common, kLoraSection), "train", false);
    CHECK(run.grpo(2).interrupted);
  }
  {
    test::TinyRun run(test::tiny_job(tmp, "split", rl::JobKind::kGrpo, common, kLoraSection), "train", true);
    CHECK(fs::path(run.job.resume_from()).filename() == "step-000002");
    CHECK(run.grpo().steps == 4);
  }
  const auto a = test::comparable_metrics(tmp.file("rlft.db"), "whole");
  const auto b = test::comparable_metrics(tmp.file("rlft.db"), "split");
  CHECK(a.size() > 40);
  for (const auto& [key, value] : a) {
    auto it = b.find(key);
    REQUIRE_MESSAGE(it != b.end(), "missing " << key.second << " at step " << key.first);
    CHECK_MESSAGE(it->second == value, key.second << " at step " << key.first << ": " << it->second << " vs " << value);
  }
  // The KL term ran against a reference that differs from the trained policy.
  CHECK(test::metric_at(tmp.file("rlft.db"), "whole", "kl", 4) > 0.0);

  // final/ and the checkpoints are PEFT adapter directories naming OUT/base.
  const auto fa = checkpoint::read_safetensors(tmp.file("whole/final/adapter_model.safetensors"));
  const auto fb = checkpoint::read_safetensors(tmp.file("split/final/adapter_model.safetensors"));
  REQUIRE(fa.size() == fb.size());
  for (const auto& [name, t] : fa) {
    CHECK_MESSAGE(t.equal(fb.at(name)), name);
    CHECK(name.rfind("base_model.model.model.layers.", 0) == 0);
  }
  CHECK(!fs::exists(tmp.file("whole/final/model.safetensors")));
  CHECK(fs::exists(tmp.file("whole/final/tokenizer.json")));
  std::string base;
  policy::read_adapter_config(tmp.file("whole/final"), &base);
  CHECK(fs::equivalent(base, tmp.file("whole/base")));
  CHECK(fs::exists(tmp.file("whole/checkpoints/step-000004/adapter_config.json")));

  // The optimizer held adapter state only.
  const auto opt =
      checkpoint::SafetensorsFile::open(tmp.file("whole/checkpoints/step-000004/trainer_state/optimizer.safetensors"));
  REQUIRE(!opt.names().empty());
  for (const auto& name : opt.names())
    CHECK_MESSAGE((name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos), name);

  // The base on disk is the model `model:` and run.seed build, router biases included.
  const auto registry = policy::builtin_architectures();
  test::TinyRun fresh(test::tiny_job(tmp, "fresh", rl::JobKind::kGrpo, {}), "train", false);
  const auto written = checkpoint::read_checkpoint(tmp.file("whole/base"));
  for (const auto& p : fresh.job.model()->named_parameters())
    if (written.count(p.key())) CHECK_MESSAGE(written.at(p.key()).equal(p.value()), p.key());
  for (const auto& bf : fresh.job.model()->named_buffers())
    if (written.count(bf.key())) CHECK_MESSAGE(written.at(bf.key()).equal(bf.value()), bf.key());

  // The adapter directory loads as base + adapter, and differs from the base.
  policy::ModelOptions mo;
  auto adapted = policy::load_model(tmp.file("whole/final"), mo, registry);
  REQUIRE(adapted->lora);
  auto plain = policy::load_model(tmp.file("whole/base"), mo, registry);
  at::NoGradGuard no_grad;
  policy::ForwardInputs in;
  in.tokens = at::tensor(std::vector<int64_t>{5, 9, 13, 40, 7}, at::kLong).unsqueeze(0);
  const auto la = adapted->forward(in).logits, lb = plain->forward(in).logits;
  CHECK((la - lb).abs().max().item<double>() > 1e-6);
  {
    policy::AdaptersDisabled off(*adapted);
    CHECK(adapted->forward(in).logits.equal(lb));
  }
}

TEST_CASE("LoRA SFT, then GRPO on its adapter: on-policy ratios are 1 with trained adapters") {
  apply_thread_count(1);
  test::TempDir tmp;
  {
    test::TinyRun run(test::tiny_job(tmp, "sft", rl::JobKind::kSft, {"sft.steps=6", "optim.lr=1e-2"}, kLoraSection),
                      "sft", false);
    CHECK(run.sft().steps == 6);
  }
  const auto adapter = checkpoint::read_safetensors(tmp.file("sft/final/adapter_model.safetensors"));
  double b_norm = 0;
  for (const auto& [name, t] : adapter)
    if (name.find("lora_B") != std::string::npos) b_norm += t.abs().sum().item<double>();
  CHECK(b_norm > 0);  // SFT moved the adapters off their zero start
  // GRPO continues the SFT adapter on the same base (policy.adapter), one step, exactly on policy.
  for (bool recompute : {false, true}) {
    const std::string name = recompute ? "grpo-recompute" : "grpo";
    test::TinyRun run(test::tiny_job(tmp, name, rl::JobKind::kGrpo,
                                     {"grpo.steps=1", "grpo.mini_batches=1", "grpo.epochs=1", "grpo.loss.kl_beta=0.1",
                                      "policy.path=" + tmp.file("sft/base"), "tokenizer.path=" + tmp.file("sft"),
                                      "policy.adapter=" + tmp.file("sft/final"),
                                      std::string("grpo.recompute_old_logp=") + (recompute ? "true" : "false")}),
                      "train", false);
    REQUIRE(run.job.model()->lora);
    CHECK(run.job.model()->lora->options.rank == 4);
    CHECK(run.grpo().steps == 1);
    const auto db = tmp.file("rlft.db");
    CHECK(std::abs(test::metric_at(db, name, "ratio_mean", 1) - 1.0) <= 1e-5);
    CHECK(test::metric_at(db, name, "approx_kl_old", 1) <= 1e-9);
    // Reference = base without the trained adapters: a real divergence from the start.
    CHECK(test::metric_at(db, name, "kl", 1) > 1e-6);
  }
  // A `lora:` section that disagrees with the adapter is refused, naming the key.
  CHECK_THROWS_WITH_AS(
      test::TinyRun(test::tiny_job(tmp, "bad", rl::JobKind::kGrpo,
                                   {"policy.path=" + tmp.file("sft/base"), "tokenizer.path=" + tmp.file("sft"),
                                    "policy.adapter=" + tmp.file("sft/final")},
                                   "lora:\n  rank: 8\n  alpha: 8\n"),
                    "train", false),
      doctest::Contains("lora.rank = 8: the adapter"), ConfigError);
  // Dropout with activation checkpointing would recompute with another mask: refused.
  CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad3", rl::JobKind::kGrpo, {"memory.activation_checkpointing=true"},
                                      "lora:\n  dropout: 0.1\n"),
                       doctest::Contains("lora.dropout = 0.1: must be 0 with memory.activation_checkpointing"),
                       ConfigError);
  // An unknown target module names the key and the model's modules.
  CHECK_THROWS_WITH_AS(
      test::TinyRun(test::tiny_job(tmp, "bad2", rl::JobKind::kGrpo, {}, "lora:\n  target_modules: [q_porj]\n"), "train",
                    false),
      doctest::Contains("lora.target_modules"), OptionError);
}

TEST_CASE("a reward model trains with LoRA: adapters and the score head, saved as an adapter directory") {
  apply_thread_count(1);
  test::TempDir tmp;
  const auto pairs = tmp.write("pairs.jsonl", [] {
    std::string s;
    for (int a = 0; a < 10; ++a)
      for (int b = 0; b < 10; ++b)
        s +=
            fmt::format(
                R"({{"prompt": "What is {} + {}?\n", "chosen": "<answer>{}</answer>", "rejected": "<answer>{}</answer> and so on and so on"}})",
                a, b, a + b, a + b) +
            "\n";
    return s;
  }());
  const auto r = test::run_rlft({"rm",
                                 "train",
                                 std::string(RLFT_SOURCE_DIR) + "/configs/rm/example.yaml",
                                 "--set",
                                 "run.store=" + tmp.file("rlft.db"),
                                 "--set",
                                 "run.output_dir=" + tmp.file("rm"),
                                 "--set",
                                 "run.threads=1",
                                 "--set",
                                 "rm.pairs=" + pairs,
                                 "--set",
                                 "rm.steps=60",
                                 "--set",
                                 "rm.eval_fraction=0.2",
                                 "--set",
                                 "rm.eval_every=60",
                                 "--set",
                                 "model.num_hidden_layers=2",
                                 "--set",
                                 "model.hidden_size=64",
                                 "--set",
                                 "model.intermediate_size=128",
                                 "--set",
                                 "model.vocab_size=300",
                                 "--set",
                                 "tokenizer.vocab_size=300",
                                 "--set",
                                 "optim.lr=5e-3",
                                 "--set",
                                 "checkpoint.every=0",
                                 "--set",
                                 "lora.rank=8",
                                 "--set",
                                 "lora.alpha=16"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto final_dir = tmp.file("rm/final");
  CHECK(fs::exists(fs::path(final_dir) / "adapter_config.json"));
  CHECK(fs::exists(fs::path(final_dir) / "score.safetensors"));
  CHECK(!fs::exists(fs::path(final_dir) / "model.safetensors"));
  auto store = data::Store::open(tmp.file("rlft.db"), false);
  const auto run = store.find_run("rm-example");
  REQUIRE(run.has_value());
  const auto acc = store.metric_series(run->id, "eval/rm_accuracy");
  REQUIRE_FALSE(acc.empty());
  MESSAGE("LoRA reward model: held-out accuracy " << acc.back().value);
  CHECK(acc.back().value >= 0.9);  // length is an easy preference
  policy::ModelOptions mo;
  auto rm = reward::load_reward_model(final_dir, mo);
  CHECK(rm->backbone->lora);
  const auto scored = test::run_rlft({"rm", "score", final_dir, "--prompt", "What is 4 + 5?\n", "--completion",
                                      "<answer>9</answer>", "--completion", "<answer>9</answer> and so on and so on"});
  CHECK_MESSAGE(scored.exit_code == 0, scored.err);
}
