// grpo.rollout.mode: async — the rollout stage overlapping training: step s is sampled by
// exactly the weights after step max(s0, s − k) (checked tensor for tensor on replicas), the
// data cursor a checkpoint records is the trainer's, a worker's failure reaches the trainer, an
// async GRPO run is reproducible and its first step is the sync run's, and bad options name
// their key.
#include <torch/utils.h>

#include <cmath>
#include <map>
#include <mutex>
#include <stdexcept>

#include "core/error.h"
#include "core/threads.h"
#include "policy/arch/arch.h"
#include "policy/lora.h"
#include "rl/grpo_async.h"
#include "rl/grpo_trainer.h"
#include "tests/rl/trainer_test_util.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

using namespace rlft;

namespace {

// A value that changes with every weight: Σ over parameters of Σ p · (1 + index).
double async_fingerprint(const policy::CausalLM& model) {
  torch::NoGradGuard ng;
  double out = 0;
  int64_t i = 0;
  for (const auto& p : model->parameters())
    out += p.to(at::kDouble).sum().item<double>() * static_cast<double>(1 + i++);
  return out;
}

}  // namespace

TEST_CASE("async rollout: step s samples with exactly the weights after step max(s0, s - k), on every worker") {
  test::TempDir tmp;
  test::TinyRun run(test::tiny_job(tmp, "replicas", rl::JobKind::kGrpo), "train", false);
  auto& policy = run.job.model();
  const auto archs = policy::builtin_architectures();
  auto make_replica = [&] { return policy::build_model(policy->config(), policy->options(), archs); };
  struct Case {
    int64_t k, workers, first;
  };
  for (const Case c : {Case{1, 1, 0}, Case{2, 1, 0}, Case{2, 2, 0}, Case{0, 1, 0}, Case{1, 2, 3}}) {
    CAPTURE(c.k);
    CAPTURE(c.workers);
    CAPTURE(c.first);
    rl::RolloutStageOptions o;
    o.mode = "async";
    o.max_staleness = c.k;
    o.workers = c.workers;
    std::mutex mu;
    std::map<int64_t, double> sampled_with;  // step → the replica's fingerprint when it sampled
    auto collect = [&](policy::CausalLM& replica, int64_t step, int64_t& cursor) {
      const double f = async_fingerprint(replica);
      {
        std::lock_guard<std::mutex> lock(mu);
        sampled_with[step] = f;
      }
      cursor += 3;  // three prompts per step
      return rl::CollectedGroups{};
    };
    std::map<int64_t, double> published = {{c.first, async_fingerprint(policy)}};
    const int64_t total = c.first + 7;
    rl::AsyncRollout pipeline(o, make_replica, policy, c.first, total, 100 + 3 * c.first, 3, collect);
    for (int64_t s = c.first; s < total; ++s) {
      const auto step = pipeline.pop(s);
      CHECK(step.version == std::max(c.first, s - c.k));
      CHECK(step.cursor_after == 100 + 3 * (s + 1));
      {
        std::lock_guard<std::mutex> lock(mu);
        CHECK(sampled_with.at(s) == published.at(step.version));
      }
      // "Training": every weight moves; the result is version s + 1.
      {
        torch::NoGradGuard ng;
        for (auto& p : policy->parameters()) p.add_(0.001 * static_cast<double>(s + 1));
      }
      published[s + 1] = async_fingerprint(policy);
      pipeline.publish(policy, s + 1);
    }
  }
}

TEST_CASE("async rollout: a worker's failure is rethrown by the trainer's next pop, naming it") {
  test::TempDir tmp;
  test::TinyRun run(test::tiny_job(tmp, "failing", rl::JobKind::kGrpo), "train", false);
  auto& policy = run.job.model();
  const auto archs = policy::builtin_architectures();
  rl::RolloutStageOptions o;
  o.mode = "async";
  auto collect = [](policy::CausalLM&, int64_t step, int64_t&) -> rl::CollectedGroups {
    if (step == 2) throw Error("reward server unreachable at step 2");
    return {};
  };
  rl::AsyncRollout pipeline(
      o, [&] { return policy::build_model(policy->config(), policy->options(), archs); }, policy, 0, 5, 0, 1, collect);
  pipeline.pop(0);
  pipeline.publish(policy, 1);
  pipeline.pop(1);
  pipeline.publish(policy, 2);
  CHECK_THROWS_WITH_AS(pipeline.pop(2), doctest::Contains("reward server unreachable at step 2"), Error);
}

TEST_CASE("async GRPO: reproducible, step 1 is the sync run's, later steps sampled one step back") {
  apply_thread_count(1);
  test::TempDir tmp;
  const std::vector<std::string> common = {"grpo.steps=4"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), common.begin(), common.end());
    return extra;
  };
  {
    test::TinyRun run(test::tiny_job(tmp, "sync", rl::JobKind::kGrpo,
                                     with({"grpo.recompute_old_logp=true", "grpo.loss.behaviour_is_cap=2.0"})),
                      "train", false);
    CHECK(run.grpo().steps == 4);
  }
  for (const char* name : {"async", "async-again"}) {
    auto parsed = test::tiny_job(tmp, name, rl::JobKind::kGrpo, with({"grpo.rollout.mode=async"}));
    // Truncated importance sampling is on by default under async.
    CHECK(parsed.trainers.grpo->loss.behaviour_is_cap == 2.0);
    test::TinyRun run(std::move(parsed), "train", false);
    CHECK(run.grpo().steps == 4);
  }
  const auto db = tmp.file("rlft.db");
  const auto sync = test::comparable_metrics(db, "sync");
  const auto a = test::comparable_metrics(db, "async");
  const auto b = test::comparable_metrics(db, "async-again");
  // Reproducible: two async runs agree on every figure.
  CHECK(a.size() == b.size());
  for (const auto& [key, value] : a) {
    CAPTURE(key.second);
    CAPTURE(key.first);
    REQUIRE(b.count(key));
    CHECK((b.at(key) == value || (std::isnan(value) && std::isnan(b.at(key)))));
  }
  // Step 1 is sampled by the initial weights in both modes: the same rollouts and update.
  for (const char* metric : {"reward_mean", "loss", "response_length/mean", "grad_norm"}) {
    CAPTURE(metric);
    CHECK(a.at({1, metric}) == sync.at({1, metric}));
  }
  // Later steps are sampled one step back, and say so.
  CHECK(a.at({1, "rollout/staleness"}) == 0);
  for (int64_t s = 2; s <= 4; ++s) {
    CHECK(a.at({s, "rollout/staleness"}) == 1);
    CHECK(a.at({s, "rollout/version"}) == s - 2);
    CHECK(sync.at({s, "rollout/staleness"}) == 0);
  }
  CHECK(a.at({2, "reward_mean"}) != sync.at({2, "reward_mean"}));
  CHECK(test::metric_at(db, "async", "time/rollout_overlap", 3) >= 0.0);
}

TEST_CASE("async rollout: bad options are config errors naming the key") {
  test::TempDir tmp;
  auto bad = [&](const std::vector<std::string>& sets, const std::string& key) {
    CAPTURE(key);
    CHECK_THROWS_WITH_AS(test::tiny_job(tmp, "bad", rl::JobKind::kGrpo, sets), doctest::Contains(key.c_str()),
                         ConfigError);
  };
  bad({"grpo.rollout.mode=eventually"}, "grpo.rollout.mode = eventually");
  bad({"grpo.rollout.mode=async", "grpo.rollout.max_staleness=-1"}, "grpo.rollout.max_staleness = -1");
  bad({"grpo.rollout.mode=async", "grpo.rollout.workers=0"}, "grpo.rollout.workers = 0");
  bad({"grpo.rollout.mode=async", "grpo.rollout.queue=-2"}, "grpo.rollout.queue = -2");
  bad({"grpo.rollout.mode=async", "grpo.recompute_old_logp=false"}, "grpo.recompute_old_logp = false");
  bad({"grpo.rollout.mode=async", "grpo.rollout.workers=2", "grpo.dynamic_sampling=true"}, "grpo.rollout.workers = 2");
}

TEST_CASE("async rollout under LoRA: replicas carry the adapters, share the frozen base, sample with each version") {
  apply_thread_count(1);
  test::TempDir tmp;
  test::TinyRun run(test::tiny_job(tmp, "lora", rl::JobKind::kGrpo, {"grpo.rollout.mode=async", "grpo.steps=3"},
                                   "lora:\n  rank: 4\n  alpha: 8\n"),
                    "train", false);
  auto& policy = run.job.model();
  REQUIRE(policy->lora);
  const auto archs = policy::builtin_architectures();
  auto make_replica = [&] {
    auto replica = policy::build_model(policy->config(), policy->options(), archs);
    policy::attach_lora(*replica, policy->lora->options, 0);
    return replica;
  };
  rl::RolloutStageOptions o;
  o.mode = "async";
  std::mutex mu;
  std::map<int64_t, double> sampled_with;
  std::map<int64_t, bool> shares_base;
  auto collect = [&](policy::CausalLM& replica, int64_t step, int64_t&) {
    const double f = async_fingerprint(replica);
    // The frozen base tensors are the trainer's own (the same storage), not copies.
    bool shared = true;
    const auto mine = replica->parameters(), theirs = policy->parameters();
    for (size_t i = 0; i < mine.size(); ++i)
      if (!theirs[i].requires_grad() && mine[i].data_ptr() != theirs[i].data_ptr()) shared = false;
    std::lock_guard<std::mutex> lock(mu);
    sampled_with[step] = f;
    shares_base[step] = shared;
    return rl::CollectedGroups{};
  };
  std::map<int64_t, double> published = {{0, async_fingerprint(policy)}};
  {
    rl::AsyncRollout pipeline(o, make_replica, policy, 0, 4, 0, 1, collect);
    for (int64_t s = 0; s < 4; ++s) {
      const auto step = pipeline.pop(s);
      {
        std::lock_guard<std::mutex> lock(mu);
        CHECK(sampled_with.at(s) == published.at(step.version));
        CHECK(shares_base.at(s));
      }
      {
        torch::NoGradGuard ng;
        for (auto& p : policy->parameters())
          if (p.requires_grad()) p.add_(0.01);
      }
      published[s + 1] = async_fingerprint(policy);
      pipeline.publish(policy, s + 1);
    }
  }
  // And a LoRA GRPO run in async mode trains to the end.
  CHECK(run.grpo().steps == 3);
  CHECK(test::metric_at(tmp.file("rlft.db"), "lora", "rollout/staleness", 3) == 1);
}
