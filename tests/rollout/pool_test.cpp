// RolloutPool: version tags, the staleness bound, weight sync, shutdown, worker errors.
#include <dirent.h>

#include <chrono>
#include <thread>

#include "rollout/pool.h"
#include "tests/rollout/rollout_test_util.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

using namespace rlft;
using namespace rlft::rollout;

namespace {

PoolOptions pool_options(PoolMode mode, int64_t staleness, int64_t groups_per_step) {
  PoolOptions o;
  o.n_workers = 2;
  o.queue_capacity = 8;
  o.mode = mode;
  o.max_staleness = staleness;
  o.groups_per_step = groups_per_step;
  o.group_size = 2;
  o.generate.max_new_tokens = 3;
  o.generate.seed = 5;
  return o;
}

PromptSource prompts(int64_t n, int64_t vocab) {
  return [n, vocab](int64_t i) -> std::optional<std::vector<int64_t>> {
    if (i >= n) return std::nullopt;
    return test::make_requests({3 + i % 4}, vocab, 1)[0].prompt;
  };
}

ReplicaFactory replicas(uint64_t seed = 7) {
  return [seed] { return test::tiny_model("qwen2", seed); };
}

// Waits up to 5 s for cond.
template <typename Fn>
bool eventually(Fn cond) {
  for (int i = 0; i < 500; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

int64_t thread_count() {
  int64_t n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (auto* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
  }
  return n;
}

}  // namespace

TEST_CASE("on-policy: every group carries the current version and rollout waits for new weights") {
  const int64_t V = 97;
  auto trainer = test::tiny_model("qwen2");
  RolloutPool pool(pool_options(PoolMode::kOnPolicy, 0, 2), replicas(), prompts(100, V));
  for (int64_t step = 0; step < 3; ++step) {
    for (int k = 0; k < 2; ++k) {
      const auto g = pool.pop();
      REQUIRE(g);
      CHECK(g->policy_version == step);
      CHECK(g->samples.size() == 2);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(pool.started() == 2 * (step + 1));  // nothing starts before the next weights
    pool.sync_weights(trainer, step + 1);
  }
}

TEST_CASE("async: rollout runs at most max_staleness steps ahead and no popped group is older") {
  const int64_t V = 97;
  auto trainer = test::tiny_model("qwen2");
  RolloutPool pool(pool_options(PoolMode::kAsync, 1, 2), replicas(), prompts(100, V));
  CHECK(eventually([&] { return pool.started() == 4; }));  // steps 0 and 1 at version 0
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(pool.started() == 4);
  bool saw_stale = false;
  for (int64_t step = 0; step < 4; ++step) {
    for (int k = 0; k < 2; ++k) {
      const auto g = pool.pop();
      REQUIRE(g);
      CHECK(g->policy_version <= step);
      CHECK(step - g->policy_version <= 1);
      saw_stale = saw_stale || g->policy_version < step;
    }
    pool.sync_weights(trainer, step + 1);
  }
  CHECK(saw_stale);  // step 1's groups were made with version 0 while step 0 trained
}

TEST_CASE("synced weights produce what a generator on those weights produces") {
  const int64_t V = 97;
  auto other = test::tiny_model("qwen2", 8);
  auto opts = pool_options(PoolMode::kOnPolicy, 0, 1);
  opts.n_workers = 1;
  RolloutPool pool(opts, replicas(7), prompts(2, V));
  const auto g0 = pool.pop();
  pool.sync_weights(other, 1);
  const auto g1 = pool.pop();
  REQUIRE(g0);
  REQUIRE(g1);
  CHECK(g1->policy_version == 1);
  Generator direct(other);
  const auto want = direct.generate({Request{g1->prompt, 2, 1}}, opts.sampling, opts.generate)[0];
  for (size_t s = 0; s < 2; ++s) {
    CHECK(g1->samples[s].tokens == want.samples[s].tokens);
    CHECK(g1->samples[s].logprobs == want.samples[s].logprobs);
  }
  pool.sync_weights(other, 2);  // on-policy: the source is asked again only at the next version
  CHECK(!pool.pop());           // prompts exhausted
}

TEST_CASE("an error in a worker is rethrown in the caller") {
  auto bad = [](int64_t i) -> std::optional<std::vector<int64_t>> {
    if (i == 1) return std::vector<int64_t>{};  // an empty prompt
    return std::vector<int64_t>{3, 4, 5};
  };
  RolloutPool pool(pool_options(PoolMode::kAsync, 4, 1), replicas(), bad);
  std::string msg;
  try {
    for (int i = 0; i < 10; ++i) pool.pop();
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("prompt 0 is empty") != std::string::npos);
}

TEST_CASE("shutdown joins every worker, also while they wait") {
  auto warm = test::tiny_model("qwen2");
  Generator(warm).generate(test::make_requests({3}, 97, 1), SamplingOptions{}, GenerateOptions{});
  const int64_t before = thread_count();
  {
    RolloutPool pool(pool_options(PoolMode::kOnPolicy, 0, 1), replicas(), prompts(100, 97));
    CHECK(pool.n_workers() == 2);
    CHECK(pool.pop());
    CHECK(thread_count() >= before + 2);
  }  // workers blocked on the next version: the destructor must still return
  CHECK(eventually([&] { return thread_count() <= before; }));
  RolloutPool pool(pool_options(PoolMode::kAsync, 1, 1), replicas(), prompts(100, 97));
  pool.shutdown();
  pool.shutdown();
  CHECK(!pool.pop());
}

TEST_CASE("bad pool options name the key") {
  auto o = pool_options(PoolMode::kAsync, -1, 1);
  CHECK(test::error_of([&] { RolloutPool(o, replicas(), prompts(1, 97)); }).find("max_staleness = -1: must be >= 0") !=
        std::string::npos);
}
