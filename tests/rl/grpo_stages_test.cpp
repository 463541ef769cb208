// The stages of a GRPO step as units: which groups a rank holds, DAPO's resampler, the
// micro-batch plan, the truncation mask and the KL charged to the rewards; then
// dynamic_sampling, kl_in_reward and mask_truncated end to end on the tiny job.
#include <cmath>
#include <map>

#include "core/distributed.h"
#include "core/error.h"
#include "core/threads.h"
#include "data/store.h"
#include "rl/grpo_collect.h"
#include "rl/grpo_step.h"
#include "rl/grpo_trainer.h"
#include "tests/rl/trainer_test_util.h"
#include "tests/support/text_util.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

using namespace rlft;

namespace grpo_stages_test {

// A round of groups whose rewards say which data position they answer: the G rewards of the
// prompt at position c are c, c + 1, … (flat — all c — when `flat(c)`).
struct FakeRollout {
  int64_t G = 2;
  std::function<bool(int64_t)> flat;
  std::vector<data::Example> examples = std::vector<data::Example>(64);
  std::vector<std::vector<int64_t>> calls;

  rl::ScoredGroups operator()(const std::vector<int64_t>& positions) {
    calls.push_back(positions);
    rl::ScoredGroups out;
    out.scores.names = {"r"};
    out.scores.weights = {1.0};
    out.scores.parts.resize(1);
    out.scores.seconds = {0.0};
    for (const int64_t c : positions) {
      rollout::Group group;
      group.request_id = static_cast<uint64_t>(c);
      group.prompt = {c};
      for (int64_t k = 0; k < G; ++k) {
        rollout::Sample s;
        s.tokens = {c, k};
        group.samples.push_back(s);
        const double r = static_cast<double>(c) + (flat(c) ? 0.0 : static_cast<double>(k));
        out.scores.total.push_back(r);
        out.scores.parts[0].push_back(r);
      }
      out.groups.push_back(std::move(group));
      out.examples.push_back(&examples[static_cast<size_t>(c % 64)]);
      out.generate.decode_tokens += G;
    }
    return out;
  }
};

std::vector<uint64_t> kept_positions(const rl::CollectedGroups& c) {
  std::vector<uint64_t> out;
  for (const auto& g : c.kept.groups) out.push_back(g.request_id);
  return out;
}

// Collects one step's groups on a single rank from a FakeRollout whose prompt c is flat when
// flat(c); `cursor` is the step's first data position.
struct Collection {
  rl::CollectedGroups groups;
  std::vector<std::vector<int64_t>> calls;  // the positions of each round
  int64_t cursor = 0;                       // after the step
};

Collection collect(std::function<bool(int64_t)> flat, int64_t prompts, rl::CollectOptions options, int64_t cursor) {
  auto d = dist::Context::single();
  FakeRollout src;
  src.G = options.group_size;
  src.flat = std::move(flat);
  Collection out;
  out.groups = rl::collect_groups(rl::RankGroups(prompts, 1, 1, 0), options, cursor, *d, std::ref(src));
  out.calls = src.calls;
  out.cursor = cursor;
  return out;
}

}  // namespace grpo_stages_test

using grpo_stages_test::collect;
using grpo_stages_test::FakeRollout;
using grpo_stages_test::kept_positions;
using test::metric_at;

TEST_CASE("each rank holds its run of whole groups in every mini-batch") {
  // P = 8, m = 2, W = 2: mini-batch 0 is groups 0-3, rank 0 holds 0-1 and rank 1 holds 2-3.
  const rl::RankGroups r0(8, 2, 2, 0), r1(8, 2, 2, 1);
  CHECK(r0.local_count() == 4);
  std::vector<int64_t> g0, g1;
  for (int64_t i = 0; i < 4; ++i) g0.push_back(r0.global(i)), g1.push_back(r1.global(i));
  CHECK(g0 == std::vector<int64_t>{0, 1, 4, 5});
  CHECK(g1 == std::vector<int64_t>{2, 3, 6, 7});
  const rl::RankGroups one(6, 3, 1, 0);
  CHECK(one.local_count() == 6);
  CHECK(one.global(5) == 5);
  CHECK_THROWS_AS(rl::RankGroups(6, 2, 2, 0), ConfigError);
}

TEST_CASE("dynamic sampling drops zero-variance groups and refills them with the next prompts") {
  const auto r = collect([](int64_t c) { return c == 12; }, 4, {2, true, 4}, 10);
  // Round 0 draws 10-13 and drops 12; round 1 draws 14; round 2 needs nothing and ends it.
  CHECK(r.calls == std::vector<std::vector<int64_t>>{{10, 11, 12, 13}, {14}});
  const auto& c = r.groups;
  CHECK(kept_positions(c) == std::vector<uint64_t>{10, 11, 13, 14});
  CHECK(c.kept.scores.total == std::vector<double>{10, 11, 11, 12, 13, 14, 14, 15});
  CHECK(c.kept.scores.parts[0] == c.kept.scores.total);
  CHECK(c.kept.examples.size() == 4);
  CHECK(c.kept.generate.decode_tokens == 10);  // every drawn group's, kept or not
  CHECK(c.drawn_groups == 5);
  CHECK(c.zero_variance_groups == 1);
  CHECK(r.cursor == 15);
}

TEST_CASE("without dynamic sampling a zero-variance group is kept and counted") {
  const auto r = collect([](int64_t c) { return c == 12; }, 4, {2, false, 4}, 10);
  CHECK(r.calls.size() == 1);
  CHECK(kept_positions(r.groups) == std::vector<uint64_t>{10, 11, 12, 13});
  CHECK(r.groups.zero_variance_groups == 1);
  CHECK(r.groups.drawn_groups == 4);
  CHECK(r.cursor == 14);
}

TEST_CASE("the last resampling round keeps whatever it draws") {
  const auto r = collect([](int64_t) { return true; }, 3, {2, true, 2}, 0);
  // Rounds 0 and 1 drop all three; round 2 (= max_resample_rounds) keeps its three.
  CHECK(r.calls == std::vector<std::vector<int64_t>>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}});
  CHECK(kept_positions(r.groups) == std::vector<uint64_t>{6, 7, 8});
  CHECK(r.groups.drawn_groups == 9);
  CHECK(r.groups.zero_variance_groups == 9);
  CHECK(r.cursor == 9);
}

namespace grpo_stages_plan {

using R = std::vector<std::pair<int64_t, int64_t>>;

// A plan's row ranges as (begin, end) pairs, per mini-batch.
std::vector<R> ranges(const std::vector<std::vector<rl::RowRange>>& plan) {
  std::vector<R> out;
  for (const auto& mini : plan) {
    R r;
    for (const auto& m : mini) r.emplace_back(m.begin, m.end);
    out.push_back(r);
  }
  return out;
}

}  // namespace grpo_stages_plan

TEST_CASE("micro-batches are row ranges inside mini-batches of whole groups") {
  CHECK(grpo_stages_plan::ranges(rl::plan_micro_batches(4, 4, 2, {3})) ==
        std::vector<grpo_stages_plan::R>{{{0, 3}, {3, 6}, {6, 8}}, {{8, 11}, {11, 14}, {14, 16}}});
  CHECK(grpo_stages_plan::ranges(rl::plan_micro_batches(4, 4, 2, {0})) ==
        std::vector<grpo_stages_plan::R>{{{0, 8}}, {{8, 16}}});
  CHECK(grpo_stages_plan::ranges(rl::plan_micro_batches(3, 2, 1, {4})) ==
        std::vector<grpo_stages_plan::R>{{{0, 4}, {4, 6}}});
}

TEST_CASE("a token budget packs rows so that rows x the longest row stays within it") {
  // 2 groups of 4 rows: long rows (10 tokens) first, then short ones (3 tokens).
  const std::vector<int64_t> lengths{10, 10, 4, 3, 3, 3, 3, 3};
  // 20 tokens: two 10-token rows, then [4, 3, 3] would be 3 x 4 = 12 and a fourth row 4 x 4 = 16 → 5 rows x 4 = 20.
  CHECK(grpo_stages_plan::ranges(rl::plan_micro_batches(2, 4, 1, {0, 20}, lengths)) ==
        std::vector<grpo_stages_plan::R>{{{0, 2}, {2, 7}, {7, 8}}});
  // Both limits hold: at most 2 rows.
  CHECK(grpo_stages_plan::ranges(rl::plan_micro_batches(2, 4, 1, {2, 20}, lengths)) ==
        std::vector<grpo_stages_plan::R>{{{0, 2}, {2, 4}, {4, 6}, {6, 8}}});
  // Mini-batches stay whole groups: the budget cuts inside each.
  CHECK(grpo_stages_plan::ranges(rl::plan_micro_batches(2, 4, 2, {0, 12}, lengths)) ==
        std::vector<grpo_stages_plan::R>{{{0, 1}, {1, 2}, {2, 4}}, {{4, 8}}});
  // A row longer than the budget: an error naming the key, value and the row's length.
  CHECK_THROWS_WITH(rl::plan_micro_batches(2, 4, 1, {0, 9}, lengths),
                    doctest::Contains("grpo.micro_batch_tokens = 9: smaller than one sequence (10 tokens"));
}

TEST_CASE("mask_truncated: a completion cut by max_new_tokens counts no token in the loss") {
  rollout::Group group;
  group.prompt = {1, 2};
  rollout::Sample stopped, cut;
  stopped.tokens = {3, 4};
  stopped.logprobs = {-0.5f, -0.25f};
  stopped.finish = rollout::FinishReason::kStop;
  cut.tokens = {5, 6, 7};
  cut.logprobs = {-1.f, -2.f, -3.f};
  cut.finish = rollout::FinishReason::kLength;
  group.samples = {stopped, cut};
  const std::vector<rollout::Group> groups{group};

  const auto masked = rl::make_sequences(groups, true);
  REQUIRE(masked.size() == 2);
  CHECK(masked[0].token_mask.empty());
  CHECK(masked[1].token_mask == std::vector<uint8_t>{0, 0, 0});
  const auto batch = rl::make_sequence_batch(masked, at::kCPU);
  CHECK(batch.mask[0].sum().item<double>() == 2);
  CHECK(batch.mask[1].sum().item<double>() == 0);
  CHECK(batch.completion[1].sum().item<int64_t>() == 3);  // still there, just not counted
  for (const auto& q : rl::make_sequences(groups, false)) CHECK(q.token_mask.empty());

  // Rollout's log-probs row-aligned, zero past each completion.
  CHECK(rl::behaviour_logprobs(groups).equal(at::tensor({-0.5f, -0.25f, 0.f, -1.f, -2.f, -3.f}).reshape({2, 3})));
}

TEST_CASE("kl_in_reward charges beta times the summed k1 of each completion to its reward") {
  auto rewards = at::tensor({1.0, 2.0}, at::kDouble).reshape({1, 2});
  const auto old_lp = at::tensor({-1.f, -2.f, -0.5f, 9.f}).reshape({2, 2});  // row 1 has one token
  const auto ref_lp = at::tensor({-1.5f, -1.f, -1.f, 0.f}).reshape({2, 2});
  const auto charge = rl::charge_kl_to_rewards(rewards, old_lp, ref_lp, {2, 1}, 0.1);
  // k1 sums: row 0 (−1 + 1.5) + (−2 + 1) = −0.5; row 1 (−0.5 + 1) = 0.5 (its padding ignored).
  CHECK(rewards[0][0].item<double>() == doctest::Approx(1.05).epsilon(1e-12));
  CHECK(rewards[0][1].item<double>() == doctest::Approx(1.95).epsilon(1e-12));
  CHECK(charge.sum == doctest::Approx(0.0));
  CHECK(charge.tokens == 3);
}

TEST_CASE("rollout records survive the trip between ranks") {
  data::RolloutRecord r;
  r.step = 3;
  r.prompt_index = 2;
  r.sample_index = 1;
  r.prompt = "What is 2+2?\n\"quoted\"";
  r.completion = "<answer>4</answer>";
  r.reward = 0.75;
  r.parts = {{"correct", 1.0}, {"fmt", 0.5}};
  r.advantage = -0.125;
  r.finish_reason = "stop";
  r.policy_version = 2;
  const auto back = data::rollout_records_from_json(data::rollout_records_to_json({r, r}));
  REQUIRE(back.size() == 2);
  CHECK(back[1].prompt == r.prompt);
  CHECK(back[1].parts == r.parts);
  CHECK(back[1].advantage == r.advantage);
  CHECK(back[1].policy_version == 2);
  CHECK_THROWS_AS(data::rollout_records_from_json("[{\"step\": 1}]"), Error);
}

TEST_CASE("GRPO end to end: dynamic_sampling draws more groups than a step keeps when some have no signal") {
  apply_thread_count(1);
  test::TempDir tmp;
  for (const bool dynamic : {false, true}) {
    const std::string name = dynamic ? "dapo" : "plain";
    auto parsed = test::tiny_job(
        tmp, name, rl::JobKind::kGrpo,
        {"grpo.steps=2", fmt::format("grpo.dynamic_sampling={}", dynamic ? "true" : "false"), "eval.enabled=false"});
    test::TinyRun run(std::move(parsed), "train", false);
    run.grpo();
    const auto db = tmp.file("rlft.db");
    for (int64_t step = 1; step <= 2; ++step) {
      const double drawn = metric_at(db, name, "groups_drawn", step);
      const double zero_var = metric_at(db, name, "zero_variance_frac", step);
      INFO(name << " step " << step << ": drawn " << drawn << ", zero-variance share " << zero_var);
      if (!dynamic || zero_var == 0)
        CHECK(drawn == 4);
      else
        CHECK(drawn > 4);
    }
  }
}

TEST_CASE("GRPO end to end: kl_in_reward reports the charged k1, the loss's KL term reports k3") {
  apply_thread_count(1);
  test::TempDir tmp;
  for (const bool in_reward : {false, true}) {
    const std::string name = in_reward ? "in_reward" : "in_loss";
    auto parsed = test::tiny_job(tmp, name, rl::JobKind::kGrpo,
                                 {"grpo.steps=3", "grpo.loss.kl_beta=0.5", "eval.enabled=false",
                                  fmt::format("grpo.loss.kl_in_reward={}", in_reward ? "true" : "false")});
    test::TinyRun run(std::move(parsed), "train", false);
    run.grpo();
    const double kl = metric_at(tmp.file("rlft.db"), name, "kl", 3);
    CHECK(std::isfinite(kl));
    CHECK(kl != 0.0);                 // the policy has moved from the reference by step 3
    if (!in_reward) CHECK(kl > 0.0);  // k3 >= 0 per token
  }
}

TEST_CASE("GRPO end to end: mask_truncated leaves no gradient when every completion is cut") {
  apply_thread_count(1);
  test::TempDir tmp;
  for (const bool mask : {false, true}) {
    const std::string name = mask ? "masked" : "counted";
    // One new token at most: every completion is cut by max_new_tokens unless it samples EOS.
    // The entropy bonus gives each counted token a gradient, whatever the advantages.
    auto parsed =
        test::tiny_job(tmp, name, rl::JobKind::kGrpo,
                       {"grpo.steps=1", "grpo.max_new_tokens=1", "eval.enabled=false", "grpo.loss.entropy_coef=0.01",
                        fmt::format("grpo.mask_truncated={}", mask ? "true" : "false")});
    test::TinyRun run(std::move(parsed), "train", false);
    run.grpo();
    const auto db = tmp.file("rlft.db");
    const double truncated = metric_at(db, name, "truncated_frac", 1);
    const double gnorm = metric_at(db, name, "grad_norm", 1);
    INFO(name << ": truncated " << truncated << ", grad norm " << gnorm);
    if (mask && truncated == 1.0) CHECK(gnorm == 0.0);
    if (!mask) CHECK(gnorm > 0.0);
  }
}

TEST_CASE("GRPO end to end with speculative rollout: drafts kept and the old log-probs are the trainer's") {
  apply_thread_count(1);
  test::TempDir tmp;
  // The tiny job's DeepSeek-V3 has one MTP module, the drafter.
  auto parsed =
      test::tiny_job(tmp, "spec", rl::JobKind::kGrpo,
                     {"grpo.steps=2", "grpo.speculative_tokens=2", "grpo.mini_batches=1", "eval.enabled=false"});
  test::TinyRun run(std::move(parsed), "train", false);
  run.grpo();
  const auto db = tmp.file("rlft.db");
  const double acceptance = metric_at(db, "spec", "rollout/draft_acceptance", 1);
  CHECK(acceptance > 0.0);
  CHECK(acceptance < 1.0);
  // The first update starts at the rollout's weights: ratio 1 up to the log-prob invariant.
  CHECK(std::abs(metric_at(db, "spec", "approx_kl_old", 1)) < 1e-6);

  // Without an MTP module: an error naming the key, before any step.
  auto no_mtp = test::tiny_job(tmp, "nomtp", rl::JobKind::kGrpo,
                               {"grpo.steps=1", "grpo.speculative_tokens=2", "eval.enabled=false", "policy.mtp=false"});
  test::TinyRun bad(std::move(no_mtp), "train", false);
  const auto message = test::error_of([&] { bad.grpo(); });
  CHECK(test::contains(message, "grpo.speculative_tokens = 2"));
  CHECK(test::contains(message, "policy.mtp is false"));
}
