// Preference reward models: a tiny backbone with a scalar head learns a synthetic preference
// (correct and brief answers beat wrong or wordy ones) from pairs in a real store, reaches
// >= 90% on held-out pairs, and then scores completions as a RewardFn in a reward set.
#include <cmath>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/threads.h"
#include "data/feedback.h"
#include "data/store.h"
#include "reward/combine.h"
#include "reward/reward_model.h"
#include "rl/rm_trainer.h"
#include "tests/rl/preference_test_util.h"
#include "tests/rl/trainer_test_util.h"
#include "tests/support/process.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

namespace fs = std::filesystem;
using namespace rlft;

TEST_CASE("a tiny reward model learns a synthetic preference to >= 90% held-out accuracy and scores as a RewardFn") {
  test::TempDir tmp;
  test::add_synthetic_pairs(tmp.file("rlft.db"), 3000, 5);
  // configs/rm/example.yaml at a smaller size, through the real command line.
  const auto r = test::run_rlft({"rm",
                                 "train",
                                 std::string(RLFT_SOURCE_DIR) + "/configs/rm/example.yaml",
                                 "--set",
                                 "run.store=" + tmp.file("rlft.db"),
                                 "--set",
                                 "run.output_dir=" + tmp.file("rm"),
                                 "--set",
                                 "run.threads=2",
                                 "--set",
                                 "rm.steps=900",
                                 "--set",
                                 "rm.eval_fraction=0.2",
                                 "--set",
                                 "rm.eval_every=300",
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
                                 "optim.lr=2e-3",
                                 "--set",
                                 "checkpoint.every=0"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const std::string final_dir = tmp.file("rm/final");
  auto store = data::Store::open(tmp.file("rlft.db"), false);
  const auto run = store.find_run("rm-example");
  REQUIRE(run.has_value());
  CHECK(run->status == "finished");
  const auto acc = store.metric_series(run->id, "eval/rm_accuracy");
  REQUIRE_FALSE(acc.empty());
  MESSAGE("held-out accuracy " << acc.back().value << " after " << acc.back().step << " steps");
  CHECK(acc.back().value >= 0.9);

  // The saved directory scores the same through the RewardFn and through score_texts.
  CHECK(fs::exists(fs::path(final_dir) / "score.safetensors"));
  CHECK(fs::exists(fs::path(final_dir) / "reward_model.json"));
  CHECK(fs::exists(fs::path(final_dir) / "tokenizer.json"));
  const auto cfg = tmp.write("rewards.yaml", fmt::format("rewards:\n  pref:\n    type: reward_model\n    path: {}\n    "
                                                         "batch_size: 3\n",
                                                         final_dir));
  auto set = reward::RewardSet::from_config(ConfigView::load(cfg).section("rewards"), reward::builtin_rewards());
  data::Example ex;
  ex.id = "x";
  ex.messages.push_back({"user", "What is 4 + 5?\n"});
  reward::ScoreBatch batch;
  batch.add(ex, "<answer>9</answer>");
  batch.add(ex, "<answer>7</answer>");
  batch.add(ex, "<answer>9</answer> I added the two numbers and I am fairly sure.");
  batch.add(ex, "<answer>12</answer>");
  const auto scores = set.score(batch);
  CHECK(scores.total[0] > scores.total[2]);
  policy::ModelOptions mo;
  auto model = reward::load_reward_model(final_dir, mo);
  model->eval();
  const auto tok = tokenizer::Tokenizer::load(final_dir);
  // Trained without a chat template (the tiny tokenizer has none): the prompt's text, then the reply.
  const auto input = reward::RewardInput::of_dir(final_dir, model->backbone->config().eos_token_id.front(), 0);
  CHECK_FALSE(input.chat_template.has_value());
  std::vector<std::vector<int64_t>> rows;
  for (const auto& c : batch.completions) {
    rows.push_back(input.ids(tok, ex.messages, c));
    auto text = tok.encode(ex.prompt() + c, true);
    text.push_back(static_cast<tokenizer::TokenId>(input.eos_id));
    CHECK(rows.back() == std::vector<int64_t>(text.begin(), text.end()));
  }
  const auto direct = reward::score_ids(model, rows, 4);
  for (size_t i = 0; i < 4; ++i) CHECK(std::abs(direct[i] - scores.total[i]) < 1e-4);

  // rlft rm score prints one JSON line per completion, with the same scores.
  const auto out = test::run_rlft({"rm", "score", final_dir, "--prompt", "What is 4 + 5?\n", "--completion",
                                   "<answer>9</answer>", "--completion", "<answer>7</answer>"});
  CHECK_MESSAGE(out.exit_code == 0, out.err);
  const auto first = nlohmann::json::parse(out.out.substr(0, out.out.find('\n')));
  CHECK(std::abs(first.at("score").get<double>() - direct[0]) < 1e-4);
}

TEST_CASE("reward-model config errors name the key") {
  test::TempDir tmp;
  CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad", rl::JobKind::kRm, {}, "rm:\n  eval_fraction: 1.5\n"),
                       doctest::Contains("rm.eval_fraction"), ConfigError);
  const auto cfg = tmp.write("r.yaml", "rewards:\n  pref:\n    type: reward_model\n    path: /nonexistent\n");
  CHECK_THROWS_WITH_AS(
      reward::RewardSet::from_config(ConfigView::load(cfg).section("rewards"), reward::builtin_rewards()),
      doctest::Contains("rewards.pref.path"), ConfigError);
}
