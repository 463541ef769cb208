// The DPO family: each loss on hand-worked values; `rlft dpo` end to end on the synthetic
// preference the reward-model test uses (held-out accuracy >= 0.85), on policy at its first
// step (implicit rewards 0, loss log 2), bitwise resume, under LoRA (the reference is the
// policy with its adapters off), and bad input.
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/config.h"
#include "core/threads.h"
#include "data/feedback.h"
#include "data/store.h"
#include "policy/arch/arch.h"
#include "policy/checkpoint/checkpoint.h"
#include "policy/model_io.h"
#include "rl/dpo_loss.h"
#include "rl/preference_pairs.h"
#include "tests/rl/preference_test_util.h"
#include "tests/rl/trainer_test_util.h"
#include "tests/support/process.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

namespace fs = std::filesystem;
using namespace rlft;

namespace {

// One pair: log π(y_c) = −10 over 4 tokens, log π(y_r) = −15 over 5; the reference's −12 and
// −14. So h_c = 2, h_r = −1, Δ = 3; per token h_c = 0.5, h_r = −0.2.
rl::DpoLossInput dpo_one_pair(bool grad = false) {
  auto c = at::tensor({-10.0f});
  if (grad) c.set_requires_grad(true);
  return {c, at::tensor({-15.0f}), at::tensor({-12.0f}), at::tensor({-14.0f}), at::tensor({4.0f}), at::tensor({5.0f})};
}

double dpo_value(const at::Tensor& t) {
  return t.item<double>();
}

// The command line of a DPO run: configs/dpo/example.yaml at a tiny size.
std::vector<std::string> dpo_args(const test::TempDir& tmp, const std::string& name, std::vector<std::string> more) {
  std::vector<std::string> a = {"dpo", std::string(RLFT_SOURCE_DIR) + "/configs/dpo/example.yaml"};
  for (const auto& s : std::vector<std::string>{
           "run.store=" + tmp.file("rlft.db"), "run.name=" + name, "run.output_dir=" + tmp.file(name), "run.threads=1",
           "run.log_level=warn", "model.num_hidden_layers=2", "model.hidden_size=64", "model.intermediate_size=128",
           "model.vocab_size=300", "tokenizer.vocab_size=300", "dpo.eval_fraction=0.2", "optim.warmup_steps=5"}) {
    a.push_back("--set");
    a.push_back(s);
  }
  for (auto& s : more) {
    a.push_back("--set");
    a.push_back(std::move(s));
  }
  return a;
}

}  // namespace

TEST_CASE("DPO losses on hand-worked values") {
  rl::DpoLossOptions o;  // sigmoid, β = 0.1
  SUBCASE("sigmoid: -log sigmoid(0.1 * 3) = log(1 + e^-0.3)") {
    const auto in = dpo_one_pair(true);
    const auto out = rl::dpo_loss(in, o);
    CHECK(dpo_value(out.loss) == doctest::Approx(0.5543552444685271).epsilon(1e-6));
    CHECK(dpo_value(out.chosen_rewards) == doctest::Approx(0.2).epsilon(1e-6));     // β h_c
    CHECK(dpo_value(out.rejected_rewards) == doctest::Approx(-0.1).epsilon(1e-6));  // β h_r
    // d/d log π(y_c) = −β σ(−βΔ) = −0.1 / (1 + e^0.3)
    out.loss.sum().backward();
    CHECK(dpo_value(in.chosen_logp.grad()) == doctest::Approx(-0.0425557483188341).epsilon(1e-6));
  }
  SUBCASE("cDPO, eps = 0.2: 0.8 log(1 + e^-0.3) + 0.2 log(1 + e^0.3)") {
    o.label_smoothing = 0.2;
    CHECK(dpo_value(rl::dpo_loss(dpo_one_pair(), o).loss) == doctest::Approx(0.6143552444685272).epsilon(1e-6));
  }
  SUBCASE("IPO: per-token log-ratios, (0.5 + 0.2 - 1 / (2 * 0.1))^2 = 18.49") {
    o.type = rl::DpoLoss::kIpo;
    const auto out = rl::dpo_loss(dpo_one_pair(), o);
    CHECK(dpo_value(out.loss) == doctest::Approx(18.49).epsilon(1e-6));
    CHECK(dpo_value(out.chosen_rewards) == doctest::Approx(0.05).epsilon(1e-6));  // 0.1 · 0.5
  }
  SUBCASE("SimPO, beta 2 (its default), gamma 0.5: -log sigmoid(2 * (-2.5 + 3) - 0.5), no reference") {
    o.type = rl::DpoLoss::kSimpo;
    o.simpo_gamma = 0.5;
    CHECK(o.beta_value() == 2.0);
    auto in = dpo_one_pair();
    in.ref_chosen_logp = in.ref_rejected_logp = at::Tensor();  // not used
    const auto out = rl::dpo_loss(in, o);
    CHECK(dpo_value(out.loss) == doctest::Approx(0.4740769841801067).epsilon(1e-6));
    CHECK(dpo_value(out.chosen_rewards) == doctest::Approx(-5.0).epsilon(1e-6));  // β ℓ_c = 2 · (−10 / 4)
    CHECK(dpo_value(out.rejected_rewards) == doctest::Approx(-6.0).epsilon(1e-6));
  }
  SUBCASE("the policy equal to its reference: loss log 2, rewards 0") {
    auto in = dpo_one_pair();
    in.ref_chosen_logp = in.chosen_logp;
    in.ref_rejected_logp = in.rejected_logp;
    const auto out = rl::dpo_loss(in, o);
    CHECK(dpo_value(out.loss) == doctest::Approx(std::log(2.0)).epsilon(1e-7));
    CHECK(dpo_value(out.chosen_rewards) == 0.0);
  }
}

TEST_CASE("preference pairs from the store: imported pairs, labels on pairs and on rollouts, ties left out") {
  test::TempDir tmp;
  auto store = data::Store::open(tmp.file("rlft.db"), true);
  data::FeedbackStore fb(store);
  data::PreferencePair p;
  p.prompt.text = "What is 1 + 1?";
  p.chosen.text = "2";
  p.rejected.text = "3";
  p.source_file = "a.jsonl";
  p.source_line = 1;
  p.source_format = "pairs";
  p.import_id = fb.begin_import("a.jsonl", "pairs");
  REQUIRE(fb.add_pair(p));
  const int64_t pair_id = fb.pairs()[0].id;
  const int64_t run = store.create_run({0, "r", "train", "running", "", "", "", 0, std::nullopt, ""});
  data::RolloutRecord a, b, c;
  a.prompt = b.prompt = c.prompt = "<rendered prompt>";
  a.completion = "good";
  b.completion = "bad";
  c.completion = "good";  // the same text as a
  store.add_rollouts(run, {a, b, c});
  auto label = [&fb](std::optional<int64_t> pair, std::optional<int64_t> ra, std::optional<int64_t> rb,
                     const std::string& choice) {
    data::FeedbackLabel l;
    l.annotator = "ann";
    l.pair_id = pair;
    l.rollout_a = ra;
    l.rollout_b = rb;
    l.choice = choice;
    fb.add_label(l);
  };
  label(pair_id, {}, {}, "rejected");  // the person prefers the pair's rejected reply
  label(pair_id, {}, {}, "tie");
  label({}, 2, 1, "rejected");  // rollout 1 (shown second) is better
  label({}, 1, 3, "chosen");    // two rollouts of the same text
  label({}, 1, 2, "both_bad");
  const auto set = rl::load_preference_texts(rl::PreferenceSource{}, tmp.file("rlft.db"), "dpo");
  REQUIRE(set.pairs.size() == 3);
  CHECK(set.identical == 1);
  CHECK(set.pairs[0].origin == "pair 1");
  CHECK(set.pairs[0].chosen_reply == "2");
  CHECK(set.pairs[0].prompt_messages.size() == 1);
  CHECK(set.pairs[0].prompt_messages[0].content == "What is 1 + 1?");
  CHECK_FALSE(set.pairs[0].prompt_rendered);
  CHECK(set.pairs[1].chosen_reply == "3");  // the label turned the pair round
  CHECK(set.pairs[1].rejected_reply == "2");
  CHECK(set.pairs[2].chosen_reply == "good");
  CHECK(set.pairs[2].rejected_reply == "bad");
  CHECK(set.pairs[2].prompt == "<rendered prompt>");
  CHECK(set.pairs[2].prompt_rendered);
  // The split is seeded: the same seed holds out the same pairs.
  const auto s1 = rl::split_preferences(set.pairs, 0.34, 7), s2 = rl::split_preferences(set.pairs, 0.34, 7);
  REQUIRE(s1.eval.size() == 1);
  CHECK(s1.eval[0] == s2.eval[0]);
  CHECK(s1.train.size() == 2);
}

TEST_CASE("rlft dpo: a tiny policy learns the synthetic preference to >= 85% held-out accuracy") {
  test::TempDir tmp;
  test::add_synthetic_pairs(tmp.file("rlft.db"), 3000, 5);
  const auto r = test::run_rlft(dpo_args(
      tmp, "dpo", {"run.threads=2", "dpo.steps=300", "dpo.eval_every=100", "optim.lr=2e-3", "checkpoint.every=0"}));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto db = tmp.file("rlft.db");
  const double pairs = test::metric_at(db, "dpo", "data/pairs", 0);
  MESSAGE(pairs << " distinct pairs, " << test::metric_at(db, "dpo", "data/pairs_held_out", 0) << " held out");
  CHECK(pairs > 100);
  // Step 1 runs on the reference's own weights: implicit rewards 0, the loss log 2.
  CHECK(std::abs(test::metric_at(db, "dpo", "rewards/chosen", 1)) < 1e-5);
  CHECK(std::abs(test::metric_at(db, "dpo", "rewards/margins", 1)) < 1e-5);
  CHECK(test::metric_at(db, "dpo", "dpo/loss", 1) == doctest::Approx(std::log(2.0)).epsilon(1e-5));
  const double acc = test::metric_at(db, "dpo", "eval/rewards/accuracies", 300);
  MESSAGE("held-out accuracy " << acc << ", margin " << test::metric_at(db, "dpo", "eval/rewards/margins", 300));
  CHECK(acc >= 0.85);
  CHECK(test::metric_at(db, "dpo", "eval/rewards/margins", 300) > 0.0);
  CHECK(test::metric_at(db, "dpo", "rewards/accuracies", 300) >= 0.85);
  // The result is a model directory every model command opens.
  policy::ModelOptions mo;
  CHECK_NOTHROW(policy::load_model(tmp.file("dpo/final"), mo, policy::builtin_architectures()));
  CHECK(fs::exists(tmp.file("dpo/final/tokenizer.json")));
}

TEST_CASE("rlft dpo resumed after an interruption continues bitwise; SimPO needs no reference") {
  test::TempDir tmp;
  test::add_synthetic_pairs(tmp.file("rlft.db"), 200, 7);
  const std::vector<std::string> common = {"dpo.steps=4", "dpo.batch_size=8", "dpo.eval_every=2", "dpo.sft_weight=0.5",
                                           "checkpoint.every=0"};
  REQUIRE(test::run_rlft(dpo_args(tmp, "whole", common)).exit_code == 0);
  const auto first = test::run_rlft([&] {
    auto a = dpo_args(tmp, "split", common);
    a.push_back("--stop-after");
    a.push_back("2");
    return a;
  }());
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  CHECK(fs::exists(tmp.file("split/checkpoints/step-000002/trainer_state/reference_logps.safetensors")));
  const auto rest = test::run_rlft([&] {
    auto a = dpo_args(tmp, "split", common);
    a.push_back("--resume");
    return a;
  }());
  REQUIRE_MESSAGE(rest.exit_code == 0, rest.err);
  const auto db = tmp.file("rlft.db");
  const auto a = test::comparable_metrics(db, "whole");
  const auto b = test::comparable_metrics(db, "split");
  CHECK(a.size() == b.size());
  CHECK(a.count({4, "dpo/sft_loss"}) == 1);
  CHECK(a.count({4, "eval/rewards/accuracies"}) == 1);
  for (const auto& [key, v] : a) {
    REQUIRE_MESSAGE(b.count(key), key.second << " at step " << key.first);
    CHECK_MESSAGE(b.at(key) == v, key.second << " at step " << key.first << ": " << b.at(key) << " vs " << v);
  }
  const auto wa = checkpoint::read_checkpoint(tmp.file("whole/final"));
  const auto wb = checkpoint::read_checkpoint(tmp.file("split/final"));
  for (const auto& [name, t] : wa) CHECK_MESSAGE(t.equal(wb.at(name)), name);

  // SimPO: no reference log-probs anywhere.
  const auto simpo = test::run_rlft(
      dpo_args(tmp, "simpo", {"dpo.loss=simpo", "dpo.steps=2", "dpo.batch_size=8", "checkpoint.every=1"}));
  REQUIRE_MESSAGE(simpo.exit_code == 0, simpo.err);
  CHECK_FALSE(fs::exists(tmp.file("simpo/checkpoints/step-000002/trainer_state/reference_logps.safetensors")));
  CHECK(test::metric_at(db, "simpo", "rewards/chosen", 1) < 0.0);  // β · mean log-prob per token
}

TEST_CASE("rlft dpo with LoRA: the reference is the policy with its adapters off; the result is an adapter") {
  test::TempDir tmp;
  test::add_synthetic_pairs(tmp.file("rlft.db"), 200, 9);
  const auto r = test::run_rlft(
      dpo_args(tmp, "lora", {"dpo.steps=3", "dpo.batch_size=8", "checkpoint.every=0", "lora.rank=4", "lora.alpha=8"}));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto db = tmp.file("rlft.db");
  // B = 0 at the start: the policy is its base, so step 1's implicit rewards are 0.
  CHECK(std::abs(test::metric_at(db, "lora", "rewards/chosen", 1)) < 1e-5);
  CHECK(std::abs(test::metric_at(db, "lora", "rewards/rejected", 1)) < 1e-5);
  CHECK(test::metric_at(db, "lora", "model/lora_rank", 0) == 4.0);
  CHECK(std::abs(test::metric_at(db, "lora", "rewards/margins", 3)) > 0.0);
  CHECK(fs::exists(tmp.file("lora/final/adapter_config.json")));
  CHECK(fs::exists(tmp.file("lora/final/adapter_model.safetensors")));
}

TEST_CASE("rlft dpo bad input: unknown loss, beta <= 0, identical pairs counted, an empty store") {
  test::TempDir tmp;
  CHECK_THROWS_WITH_AS(
      test::tiny_job(tmp, "bad1", rl::JobKind::kDpo, {"dpo.loss=kto"}),
      doctest::Contains("dpo.loss = kto: unknown DPO loss 'kto': known losses are ipo, sigmoid, simpo"), ConfigError);
  CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad2", rl::JobKind::kDpo, {"dpo.beta=0"}),
                       doctest::Contains("dpo.beta = 0: must be > 0"), ConfigError);
  CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad3", rl::JobKind::kDpo, {"dpo.beta=-0.5"}), doctest::Contains("dpo.beta"),
                       ConfigError);
  CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad4", rl::JobKind::kDpo, {"dpo.loss=ipo", "dpo.label_smoothing=0.1"}),
                       doctest::Contains("dpo.label_smoothing"), ConfigError);
  CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad5", rl::JobKind::kDpo, {"dpo.label_smoothing=0.5"}),
                       doctest::Contains("dpo.label_smoothing = 0.5: must be in [0, 0.5)"), ConfigError);

  // A pairs file with a pair whose two replies are the same: skipped, counted, the rest trains.
  {
    std::ofstream f(tmp.file("pairs.jsonl"));
    f << R"({"prompt": "What is 1 + 1?\n", "chosen": "<answer>2</answer>", "rejected": "<answer>3</answer>"})"
      << "\n";
    f << R"({"prompt": "What is 2 + 2?\n", "chosen": "<answer>4</answer>", "rejected": "<answer>4</answer>"})"
      << "\n";
    f << R"({"prompt": "What is 3 + 1?\n", "chosen": "<answer>4</answer>", "rejected": "<answer>5</answer>"})"
      << "\n";
    f << R"({"prompt": "What is 2 + 3?\n", "chosen": "<answer>5</answer>", "rejected": "<answer>1</answer>"})"
      << "\n";
  }
  const auto r = test::run_rlft(dpo_args(tmp, "file",
                                         {"dpo.pairs=" + tmp.file("pairs.jsonl"), "dpo.steps=1", "dpo.batch_size=2",
                                          "dpo.eval_fraction=0.0", "run.log_level=info"}));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.err.find("1 preference pairs skipped: their chosen and rejected replies are the same text") !=
        std::string::npos);
  CHECK(test::metric_at(tmp.file("rlft.db"), "file", "data/pairs", 0) == 3.0);
  CHECK(test::metric_at(tmp.file("rlft.db"), "file", "data/identical_pairs_skipped", 0) == 1.0);

  // A line that is not JSON names the file and line.
  {
    std::ofstream f(tmp.file("broken.jsonl"));
    f << R"({"prompt": "p", "chosen": "a", "rejected": "b"})"
      << "\n"
      << "{not json\n";
  }
  const auto broken = test::run_rlft(dpo_args(tmp, "broken", {"dpo.pairs=" + tmp.file("broken.jsonl")}));
  CHECK(broken.exit_code != 0);
  CHECK(broken.err.find(tmp.file("broken.jsonl") + ":2") != std::string::npos);

  // An empty store: a clear error, no run left behind.
  data::Store::open(tmp.file("empty.db"), true);
  const auto empty = test::run_rlft(dpo_args(tmp, "empty", {"run.store=" + tmp.file("empty.db")}));
  CHECK(empty.exit_code != 0);
  CHECK_MESSAGE(empty.err.find("rlft dpo: 0 preference pairs; at least 2 are needed") != std::string::npos, empty.err);
}
