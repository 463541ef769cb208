// The distributed context with real processes on loopback: this test binary starts two
// copies of itself as ranks (the "distributed rank" case, skipped in ordinary runs).
#include "core/distributed.h"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>

#include "core/error.h"
#include "tests/support/ranks.h"

namespace {

using rlft::test::self_exe;

std::vector<rlft::test::ProcessResult> run_ranks(int world, const std::string& scenario) {
  return rlft::test::run_ranks(world, "distributed rank", scenario);
}

}  // namespace

TEST_CASE("distributed rank" * doctest::skip()) {
  const std::string scenario = rlft::test::rank_scenario();
  const auto env = rlft::dist::Env::from_environment();
  rlft::dist::Options o;
  o.timeout_s = 20;
  if (scenario == "die") o.timeout_s = 5;
  auto ctx = rlft::dist::Context::create(env, o);
  if (scenario == "collectives") {
    std::vector<at::Tensor> t{at::full({3}, static_cast<float>(ctx->rank() + 1))};
    ctx->all_reduce_sum(t);
    CHECK(t[0][0].item<float>() == 3.0f);
    at::Tensor b = at::full({2}, static_cast<float>(ctx->rank() == 1 ? 7 : 0));
    ctx->broadcast(b, 1);
    CHECK(b[1].item<float>() == 7.0f);
    ctx->barrier();
    const auto all = ctx->all_gather_string(ctx->rank() == 0 ? "zero" : "one!");
    CHECK(all == std::vector<std::string>{"zero", "one!"});
    CHECK_NOTHROW(ctx->check_consistent("config hash", "abc"));
    // Vectors of doubles: sums, maxima, gathers of unequal lengths.
    CHECK(ctx->sum(std::vector<double>{1.0, static_cast<double>(ctx->rank())}) == std::vector<double>{2.0, 1.0});
    CHECK(ctx->max(std::vector<double>{static_cast<double>(ctx->rank()), -1.0}) == std::vector<double>{1.0, -1.0});
    const auto gathered = ctx->all_gather(ctx->rank() == 0 ? std::vector<double>{5.0} : std::vector<double>{6.0, 7.0});
    CHECK(gathered == std::vector<double>{5.0, 6.0, 7.0});
    CHECK(ctx->any(ctx->rank() == 1));
    CHECK_FALSE(ctx->any(false));
    std::string text = ctx->rank() == 0 ? std::string(100000, 'x') + "end" : "";
    ctx->broadcast_string(text);
    CHECK(text.size() == 100003);
    // An error on one rank is raised on every rank, naming it.
    const auto failing = [&] {
      ctx->together("load the weights", [&] {
        if (ctx->rank() == 1) throw rlft::Error("weights.safetensors: truncated");
      });
    };
    if (ctx->rank() == 1)
      CHECK_THROWS_WITH_AS(failing(), "weights.safetensors: truncated", rlft::Error);
    else
      CHECK_THROWS_WITH_AS(failing(), "rank 1 failed to load the weights: weights.safetensors: truncated", rlft::Error);
    CHECK_NOTHROW(ctx->on_main("write", [] {}));
    CHECK(ctx->take_collective_seconds() >= 0.0);
  } else if (scenario == "subgroups") {
    // World 3: "pair" = {0, 1}, "ends" = {0, 2}; each reduces among its members alone.
    std::shared_ptr<rlft::dist::Context> pair, ends;
    if (ctx->rank() < 2) pair = ctx->subgroup("pair", {0, 1});
    if (ctx->rank() != 1) ends = ctx->subgroup("ends", {0, 2});
    if (pair) {
      CHECK(pair->world_size() == 2);
      CHECK(pair->rank() == ctx->rank());
      CHECK(pair->global_rank() == ctx->rank());
      CHECK(pair->sum(static_cast<double>(ctx->rank() + 1)) == 3.0);
    }
    if (ends) {
      CHECK(ends->rank() == (ctx->rank() == 0 ? 0 : 1));
      CHECK(ends->global_rank() == ctx->rank());
      at::Tensor t = at::full({4}, ctx->rank() == 0 ? 5.0f : 0.0f);
      ends->broadcast(t, 0);
      CHECK(t[3].item<float>() == 5.0f);
    }
    // Store messages: rank 2 writes, rank 0 takes (once), then waits for one from a dead rank.
    std::string big(9 * (1 << 20) + 3, 'b');  // three chunks
    big[5 << 20] = 'x';
    if (ctx->rank() == 2) {
      ctx->put("test/big", big);
      ctx->put("test/hello", "from two");
      std::_Exit(3);  // without a word
    }
    if (ctx->rank() == 0) {
      CHECK(ctx->take("test/hello", 2, "a greeting") == "from two");
      CHECK_FALSE(ctx->has("test/hello"));
      CHECK(ctx->take("test/big", 2, "a long message") == big);
      CHECK_FALSE(ctx->has("test/big#1"));
      const auto t0 = std::chrono::steady_clock::now();
      CHECK_THROWS_WITH_AS(ctx->take("test/never", 2, "a second greeting"),
                           doctest::Contains("rank 0/3: rank 2 has died or is frozen (no heartbeat for 3 s) while this "
                                             "rank waited for a second greeting"),
                           rlft::Error);
      CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 10);
      // A collective of a subgroup names the global rank that is gone.
      at::Tensor t = at::ones({1});
      CHECK_THROWS_WITH_AS(ends->broadcast(t, 0), doctest::Contains("rank 2 has died"), rlft::Error);
    }
  } else if (scenario == "mismatch") {
    ctx->check_consistent("config hash", ctx->rank() == 0 ? "aaaa" : "bbbb");
  } else if (scenario == "die") {
    if (ctx->rank() == 1) std::_Exit(9);  // dies without a word
    std::vector<at::Tensor> t{at::ones({1})};
    ctx->all_reduce_sum(t);
  }
}

TEST_CASE("two ranks on loopback all-reduce, broadcast and gather") {
  const auto r = run_ranks(2, "collectives");
  for (const auto& p : r) CHECK_MESSAGE(p.exit_code == 0, p.out << p.err);
}

TEST_CASE("subgroups reduce among their members, store messages arrive once, a dead writer is named") {
  const auto r = run_ranks(3, "subgroups");
  CHECK_MESSAGE(r[0].exit_code == 0, r[0].out << r[0].err);
  CHECK_MESSAGE(r[1].exit_code == 0, r[1].out << r[1].err);
  CHECK(r[2].exit_code == 3);
}

TEST_CASE("a config mismatch between ranks is an error on every rank naming the ranks") {
  const auto r = run_ranks(2, "mismatch");
  for (const auto& p : r) {
    CHECK(p.exit_code != 0);
    CHECK_MESSAGE(
        p.out.find("config hash differs between ranks: rank 0 has aaaa, rank(s) 1 differ (rank 1 has bbbb)") !=
            std::string::npos,
        p.out << p.err);
  }
}

TEST_CASE("a rank that dies makes the other fail within the timeout instead of hanging") {
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_ranks(2, "die");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(r[1].exit_code == 9);
  CHECK(r[0].exit_code != 0);
  CHECK_MESSAGE(r[0].out.find("rank 0/2: all_reduce #1 did not complete") != std::string::npos, r[0].out << r[0].err);
  CHECK_MESSAGE(r[0].out.find("rank 1 has died or is frozen") != std::string::npos, r[0].out << r[0].err);
  CHECK(s < 60);
}

TEST_CASE("the environment of torchrun and SLURM is read, and bad values are named") {
  const auto r = rlft::test::run_process({"env", "-i", "RANK=1", "WORLD_SIZE=4", "LOCAL_RANK=1", self_exe(),
                                          "--no-skip", "-tc=distributed env probe", "--no-version"});
  CHECK_MESSAGE(r.exit_code == 0, r.out << r.err);
}

TEST_CASE("distributed env probe" * doctest::skip()) {
  const auto e = rlft::dist::Env::from_environment();
  CHECK(e.rank == 1);
  CHECK(e.world_size == 4);
  CHECK(e.launcher == "torchrun");
  setenv("RANK", "x", 1);
  CHECK_THROWS_WITH_AS(rlft::dist::Env::from_environment(),
                       "environment variable RANK=x: expected an integer in [0, 1048576]", rlft::Error);
  unsetenv("RANK");
  unsetenv("WORLD_SIZE");
  setenv("SLURM_NTASKS", "2", 1);  // a batch script's own variables: not a rank
  setenv("SLURM_PROCID", "0", 1);
  CHECK(rlft::dist::Env::from_environment().launcher == "none");
  setenv("SLURM_STEP_NUM_TASKS", "2", 1);  // a task of srun's step
  setenv("SLURM_PROCID", "1", 1);
  const auto s = rlft::dist::Env::from_environment();
  CHECK(s.launcher == "slurm");
  CHECK(s.rank == 1);
}

TEST_CASE("a tensors hash covers names, shapes and every byte") {
  const auto a = at::arange(10, at::kFloat);
  auto b = a.clone();
  const std::string h = rlft::dist::tensors_hash({{"w", a}});
  CHECK(h.size() == 16);
  CHECK(rlft::dist::tensors_hash({{"w", b}}) == h);
  b[9] = 9.0001f;
  CHECK(rlft::dist::tensors_hash({{"w", b}}) != h);
  CHECK(rlft::dist::tensors_hash({{"v", a}}) != h);
  CHECK(rlft::dist::tensors_hash({{"w", a.reshape({2, 5})}}) != h);
}
