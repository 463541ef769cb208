// The message a rollout rank sends a trainer rank (distributed.rollout_ranks): every field of
// the scored groups survives the trip — tokens, behaviour log-probs, texts, finish reasons,
// routing for replay, reward parts, counts and timings, the policy version — and bytes that are
// not such a message are an error, never a wrong batch. The processes themselves are tested in
// tests/app/distributed_train_test.cpp.
#include <string>
#include <vector>

#include "core/error.h"
#include "rl/grpo_rollout_ranks.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

using namespace rlft;

TEST_CASE("a rollout rank's groups decode to what it sampled and scored") {
  std::vector<data::Example> train(5);
  for (size_t i = 0; i < train.size(); ++i) train[i].id = "ex" + std::to_string(i);
  rl::CollectedGroups c;
  c.drawn_groups = 2;
  c.zero_variance_groups = 1;
  auto& k = c.kept;
  for (int p = 0; p < 2; ++p) {
    rollout::Group g;
    g.request_id = 40 + static_cast<uint64_t>(p);
    g.prompt = {1, 2, 3 + p};
    g.policy_version = 7;
    for (int s = 0; s < 2; ++s) {
      rollout::Sample sample;
      sample.tokens = {10 + s, 11, 12};
      sample.logprobs = {-0.5f, -1.25f - static_cast<float>(s), -3.0f};
      sample.finish = s == 0 ? rollout::FinishReason::kStop : rollout::FinishReason::kLength;
      sample.text = "answer ✓ " + std::to_string(p * 2 + s);
      // Two MoE layers: [prompt + completion, top-k] expert ids.
      for (int layer = 0; layer < 2; ++layer)
        sample.routing.push_back(at::arange(12, at::kLong).reshape({6, 2}) * (layer + 1) + s);
      g.samples.push_back(sample);
    }
    k.groups.push_back(g);
    k.examples.push_back(&train[static_cast<size_t>(3 - p)]);
  }
  k.scores.total = {1.0, 0.0, 0.5, 0.5};
  k.scores.names = {"correct", "fmt"};
  k.scores.weights = {1.0, 0.0};
  k.scores.parts = {{1, 0, 0.5, 0.5}, {1, 1, 0, 0}};
  k.scores.seconds = {0.01, 0.02};
  k.generate.prefill_tokens = 12;
  k.generate.decode_tokens = 24;
  k.generate.decode_steps = 3;
  k.generate.decode_seconds = 0.75;
  k.rollout_seconds = 1.5;
  k.reward_seconds = 0.25;

  const auto bytes = rl::encode_groups(c, 7, train);
  int64_t version = -1;
  const auto back = rl::decode_groups(bytes, version, train);
  CHECK(version == 7);
  CHECK(back.drawn_groups == 2);
  CHECK(back.zero_variance_groups == 1);
  const auto& b = back.kept;
  REQUIRE(b.groups.size() == 2);
  CHECK(b.examples[0] == &train[3]);
  CHECK(b.examples[1] == &train[2]);
  for (size_t p = 0; p < 2; ++p) {
    CHECK(b.groups[p].request_id == k.groups[p].request_id);
    CHECK(b.groups[p].prompt == k.groups[p].prompt);
    CHECK(b.groups[p].policy_version == 7);
    REQUIRE(b.groups[p].samples.size() == 2);
    for (size_t s = 0; s < 2; ++s) {
      const auto& x = k.groups[p].samples[s];
      const auto& y = b.groups[p].samples[s];
      CHECK(y.tokens == x.tokens);
      CHECK(y.logprobs == x.logprobs);  // bitwise: the behaviour log-probs of off-policy correction
      CHECK(y.finish == x.finish);
      CHECK(y.text == x.text);
      REQUIRE(y.routing.size() == 2);
      for (size_t l = 0; l < 2; ++l) {
        CHECK(y.routing[l].dtype() == at::kLong);
        CHECK(at::equal(y.routing[l], x.routing[l]));
      }
    }
  }
  CHECK(b.scores.total == k.scores.total);
  CHECK(b.scores.names == k.scores.names);
  CHECK(b.scores.weights == k.scores.weights);
  CHECK(b.scores.parts == k.scores.parts);
  CHECK(b.scores.seconds == k.scores.seconds);
  CHECK(b.generate.prefill_tokens == 12);
  CHECK(b.generate.decode_tokens == 24);
  CHECK(b.generate.decode_steps == 3);
  CHECK(b.generate.decode_seconds == 0.75);
  CHECK(b.rollout_seconds == 1.5);
  CHECK(b.reward_seconds == 0.25);

  // Truncated, extended or foreign bytes, and an example the trainer's data does not have.
  CHECK_THROWS_WITH_AS(rl::decode_groups(bytes.substr(0, bytes.size() - 3), version, train),
                       doctest::Contains("a rollout message is corrupt"), Error);
  CHECK_THROWS_WITH_AS(rl::decode_groups(bytes + "x", version, train),
                       doctest::Contains("a rollout message is corrupt: bytes follow its end"), Error);
  CHECK_THROWS_WITH_AS(rl::decode_groups("Eboom", version, train), doctest::Contains("does not start with groups"),
                       Error);
  const std::vector<data::Example> fewer(train.begin(), train.begin() + 2);
  CHECK_THROWS_WITH_AS(rl::decode_groups(bytes, version, fewer),
                       doctest::Contains("names example 3 of 2: the ranks hold different training data"), Error);
}
