// The memory estimate behind the fit check (rl/memory_estimate.h): what it counts, how it
// scales, and the error that names what to lower.
#include "rl/memory_estimate.h"

#include "core/error.h"
#include "tests/policy/tiny_models.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too

using namespace rlft;

namespace {

rl::MemoryWorkload workload(int64_t tokens, bool checkpointing) {
  rl::MemoryWorkload w;
  w.n_params = 1'000'000;
  w.n_trainable = 1'000'000;
  w.forward_tokens = tokens;
  w.longest_sequence = 300;
  w.activation_checkpointing = checkpointing;
  w.rollout_rows = 64;
  w.rollout_tokens = 300;
  return w;
}

}  // namespace

TEST_CASE("weights, gradients and AdamW moments are 4, 4 and 8 bytes a parameter; a reference doubles the weights") {
  const auto c = test::tiny_config("qwen2");
  auto w = workload(1000, false);
  auto e = rl::estimate_memory(c, w);
  CHECK(e.weights == 4e6);
  CHECK(e.gradients == 4e6);
  CHECK(e.moments == 8e6);
  CHECK(e.reference == 0);
  w.reference = true;
  CHECK(rl::estimate_memory(c, w).reference == 4e6);
  w.n_trainable = 1000;  // adapters, say: gradients and moments follow the trainable count
  e = rl::estimate_memory(c, w);
  CHECK(e.gradients == 4e3);
  CHECK(e.moments == 8e3);
}

TEST_CASE("async rollout holds rollout beside the activations, and copies of the trainable weights") {
  const auto c = test::tiny_config("qwen2");
  auto w = workload(1000, false);
  const auto sync = rl::estimate_memory(c, w);
  w.published_versions = 2;
  w.rollout_workers = 2;
  const auto async = rl::estimate_memory(c, w);
  CHECK(async.published == 2 * 4e6);
  CHECK(async.rollout == 2 * sync.rollout);
  CHECK(async.peak() == doctest::Approx(sync.weights + sync.gradients + sync.moments + 8e6 + sync.activations +
                                        2 * sync.rollout + sync.runtime));
  CHECK(async.peak() > sync.peak());
  CHECK(async.describe().find("published weights 0.01 GB") != std::string::npos);
}

TEST_CASE("activations grow linearly in the token budget, and not with the vocabulary beyond one chunk") {
  const auto small = test::tiny_config("qwen2", {"model.vocab_size=320", "model.num_hidden_layers=8"});
  const auto large = test::tiny_config("qwen2", {"model.vocab_size=151936", "model.num_hidden_layers=8"});
  const double b1 = rl::estimate_memory(large, workload(20'000, false)).activations;
  const double b2 = rl::estimate_memory(large, workload(40'000, false)).activations;
  const double b4 = rl::estimate_memory(large, workload(80'000, false)).activations;
  CHECK(b4 - b2 == doctest::Approx(2 * (b2 - b1)));
  const double a1 = rl::estimate_memory(small, workload(20'000, false)).activations;
  // The vocabulary adds at most the chunked head's buffers (4 × 64 MiB).
  CHECK(b1 - a1 <= 4 * 64.0 * 1024 * 1024);
  CHECK(b1 - a1 > 0);
  // Checkpointing keeps one [tokens, D] per layer instead of every intermediate.
  CHECK(rl::estimate_memory(small, workload(20'000, true)).activations < a1 / 2);
}

TEST_CASE("a run that would not fit is a configuration error that names what to lower") {
  const auto c = test::tiny_config("qwen2");
  const auto e = rl::estimate_memory(c, workload(1000, false));
  CHECK_NOTHROW(rl::check_fit(e, e.peak() + 1, {"grpo.micro_batch_tokens (now 0)"}));
  CHECK_THROWS_AS(rl::check_fit(e, e.peak() / 2, {"grpo.micro_batch_tokens (now 0)"}), ConfigError);
  CHECK_THROWS_WITH(rl::check_fit(e, 1e9 * 0.25, {"grpo.micro_batch_tokens (now 0)", "grpo.max_new_tokens (now 64)"}),
                    doctest::Contains("exceeds the 0.25 GB available. Lower one of: grpo.micro_batch_tokens (now 0), "
                                      "grpo.max_new_tokens (now 64); or set memory.check_fit: false"));
}
