// Beam search: one beam is greedy; more beams find sequences greedy misses.
#include <numeric>

#include "rollout/beam.h"
#include "tests/rollout/rollout_test_util.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

using namespace rlft;
using namespace rlft::rollout;

namespace {

double sum(const std::vector<float>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0);
}

}  // namespace

TEST_CASE("one beam is greedy decoding") {
  auto model = test::tiny_model("qwen2");
  Generator gen(model);
  SamplingOptions greedy;
  greedy.temperature = 0.0;
  GenerateOptions g;
  g.max_new_tokens = 6;
  g.use_model_eos = false;
  BeamOptions b;
  b.num_beams = 1;
  b.max_new_tokens = 6;
  b.use_model_eos = false;
  for (const auto& r : test::make_requests({3, 7}, model->config().vocab_size, 1)) {
    const auto want = gen.generate({r}, greedy, g)[0].samples[0];
    const auto got = beam_search(model, r.prompt, b);
    REQUIRE(got.size() == 1);
    CHECK(got[0].tokens == want.tokens);
    CHECK(got[0].finish == FinishReason::kLength);
  }
}

TEST_CASE("beam search finds a likelier sequence than greedy where they differ") {
  auto model = test::tiny_model("qwen3-moe");
  Generator gen(model);
  SamplingOptions greedy;
  greedy.temperature = 0.0;
  GenerateOptions g;
  g.max_new_tokens = 4;
  g.use_model_eos = false;
  BeamOptions b;
  b.num_beams = 4;
  b.max_new_tokens = 4;
  b.length_penalty = 0.0;  // score = sum of log-probs
  b.use_model_eos = false;
  b.num_return = 2;
  int differ = 0;
  for (const auto& r : test::make_requests({2, 3, 4, 5, 6, 7, 8, 9}, model->config().vocab_size, 1)) {
    const auto greedy_run = gen.generate({r}, greedy, g)[0].samples[0];
    const auto beams = beam_search(model, r.prompt, b);
    REQUIRE(beams.size() == 2);
    CHECK(beams[0].score >= beams[1].score);
    CHECK(beams[0].score == doctest::Approx(sum(beams[0].logprobs)));
    CHECK(beams[0].score >= sum(greedy_run.logprobs) - 1e-5);
    if (beams[0].tokens != greedy_run.tokens) {
      ++differ;
      CHECK(beams[0].score > sum(greedy_run.logprobs));
    }
  }
  CHECK(differ > 0);
}

TEST_CASE("beam search stops hypotheses on a stop token and validates its options") {
  auto model = test::tiny_model("qwen2");
  const auto r = test::make_requests({5}, model->config().vocab_size, 1)[0];
  BeamOptions b;
  b.num_beams = 3;
  b.max_new_tokens = 5;
  b.use_model_eos = false;
  const auto free_run = beam_search(model, r.prompt, b)[0];
  b.stop_token_ids = {free_run.tokens[0]};
  b.early_stopping = true;
  const auto stopped = beam_search(model, r.prompt, b);
  CHECK(!stopped.empty());
  BeamOptions bad;
  bad.num_beams = 0;
  CHECK(test::error_of([&] { beam_search(model, r.prompt, bad); }).find("beam.num_beams = 0: must be >= 1") !=
        std::string::npos);
}
