// Batched generation: the log-prob invariant against a training forward, reproducibility,
// prefix sharing, stop conditions and bad input.
#include <torch/torch.h>

#include "rollout/generator.h"
#include "tests/rollout/rollout_test_util.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

using namespace rlft;
using namespace rlft::rollout;
using rlft::test::error_of;

namespace {

SamplingOptions warm_sampling() {
  SamplingOptions s;
  s.temperature = 0.8;
  s.top_k = 40;
  s.top_p = 0.95;
  return s;
}

GenerateOptions gen_options(int64_t max_new, bool routing) {
  GenerateOptions g;
  g.max_new_tokens = max_new;
  g.record_routing = routing;
  g.seed = 11;
  return g;
}

// max |recorded − training forward| over every sample of every group.
double invariant_error(policy::CausalLM& model, const std::vector<Group>& groups, double temperature, bool replay) {
  double worst = 0.0;
  at::NoGradGuard no_grad;
  for (const auto& g : groups)
    for (const auto& s : g.samples) {
      const auto train = test::training_logprobs(model, g.prompt, s, temperature, replay);
      worst = std::max(worst, (train - test::as_tensor(s.logprobs)).abs().max().item<double>());
    }
  return worst;
}

}  // namespace

TEST_CASE("recorded log-probs equal one training forward over prompt + completion (fp32, CPU)") {
  for (const std::string name : {"qwen2", "qwen3-moe", "deepseek-v3"}) {
    auto model = test::tiny_model(name);
    const bool moe = model->config().is_moe();
    Generator gen(model);
    const auto V = model->config().vocab_size;
    for (bool batched : {true, false}) {
      const auto requests = batched ? test::make_requests({3, 9, 5}, V, 3) : test::make_requests({6}, V, 1);
      const auto groups = gen.generate(requests, warm_sampling(), gen_options(7, moe));
      CAPTURE(name);
      CAPTURE(batched);
      REQUIRE(groups.size() == requests.size());
      for (const auto& g : groups)
        for (const auto& s : g.samples) {
          REQUIRE(!s.tokens.empty());
          REQUIRE(s.logprobs.size() == s.tokens.size());
          if (moe) {
            REQUIRE(s.routing.size() == model->moe_layers().size());
            CHECK(s.routing[0].size(0) == static_cast<int64_t>(g.prompt.size() + s.tokens.size()));
          }
        }
      CHECK(invariant_error(model, groups, 0.8, false) <= 1e-5);
      if (moe) CHECK(invariant_error(model, groups, 0.8, true) <= 1e-5);
    }
  }
}

TEST_CASE("routing replay reproduces the recorded experts' log-probs even when routing afresh would differ") {
  // Perturbing the router biases after generation changes fresh routing; replay restores it.
  auto model = test::tiny_model("deepseek-v3");
  Generator gen(model);
  const auto groups =
      gen.generate(test::make_requests({5, 8}, model->config().vocab_size, 2), warm_sampling(), gen_options(6, true));
  {
    at::NoGradGuard no_grad;
    for (auto& b : model->named_buffers())
      if (b.key().find("e_score_correction_bias") != std::string::npos) b.value().add_(at::randn(b.value().sizes()));
  }
  CHECK(invariant_error(model, groups, 0.8, false) > 1e-4);
  // DeepSeek-V3's bias only selects experts; the gate weights come from the scores, so the
  // replayed selection gives back the recorded log-probs exactly.
  CHECK(invariant_error(model, groups, 0.8, true) <= 1e-5);
}

TEST_CASE("the same seed and requests give the same outputs; a request does not depend on its batch") {
  auto model = test::tiny_model("qwen3-moe");
  Generator gen(model);
  const auto V = model->config().vocab_size;
  const auto requests = test::make_requests({4, 7, 2}, V, 2);
  const auto a = gen.generate(requests, warm_sampling(), gen_options(8, false));
  const auto b = gen.generate(requests, warm_sampling(), gen_options(8, false));
  auto other_seed = gen_options(8, false);
  other_seed.seed = 12;
  const auto c = gen.generate(requests, warm_sampling(), other_seed);
  bool any_diff = false;
  for (size_t r = 0; r < a.size(); ++r)
    for (size_t s = 0; s < a[r].samples.size(); ++s) {
      CHECK(a[r].samples[s].tokens == b[r].samples[s].tokens);
      CHECK(a[r].samples[s].logprobs == b[r].samples[s].logprobs);
      any_diff = any_diff || a[r].samples[s].tokens != c[r].samples[s].tokens;
    }
  CHECK(any_diff);
  // request 1 alone (one row per wave) draws the same completions as inside the batch
  const auto alone = gen.generate({requests[1]}, warm_sampling(), gen_options(8, false));
  for (size_t s = 0; s < 2; ++s) CHECK(alone[0].samples[s].tokens == a[1].samples[s].tokens);
  auto one_row = gen_options(8, false);
  one_row.max_batch_rows = 2;
  const auto waves = gen.generate(requests, warm_sampling(), one_row);
  for (size_t r = 0; r < a.size(); ++r)
    for (size_t s = 0; s < 2; ++s) CHECK(waves[r].samples[s].tokens == a[r].samples[s].tokens);
}

TEST_CASE("a group's prompt is prefilled once, not once per sample") {
  auto model = test::tiny_model("qwen2");
  Generator gen(model);
  GenerateStats stats;
  gen.generate(test::make_requests({10, 6}, model->config().vocab_size, 8), warm_sampling(), gen_options(3, false),
               &stats);
  CHECK(stats.prefill_tokens == 16);
  CHECK(stats.decode_tokens <= 2 * 8 * 2);  // 3 new tokens: the last is never fed
}

TEST_CASE("completions stop on a stop token, a stop string or max_new_tokens") {
  auto model = test::tiny_model("qwen2");
  Generator gen(model);
  SamplingOptions greedy;
  greedy.temperature = 0.0;
  auto o = gen_options(5, false);
  o.use_model_eos = false;
  const auto requests = test::make_requests({4}, model->config().vocab_size, 1);
  const auto free_run = gen.generate(requests, greedy, o)[0].samples[0];
  CHECK(free_run.tokens.size() == 5);
  CHECK(free_run.finish == FinishReason::kLength);
  CHECK(std::string(finish_reason_name(free_run.finish)) == "length");

  auto by_token = o;
  by_token.stop_token_ids = {free_run.tokens[1]};
  const auto s1 = gen.generate(requests, greedy, by_token)[0].samples[0];
  const auto first_stop = std::find(free_run.tokens.begin(), free_run.tokens.end(), free_run.tokens[1]);
  CHECK(s1.tokens == std::vector<int64_t>(free_run.tokens.begin(), first_stop + 1));
  CHECK(s1.finish == FinishReason::kStop);

  auto by_string = o;
  by_string.detokenize = [](const std::vector<int64_t>& ids) {
    std::string s;
    for (auto id : ids) s += "<" + std::to_string(id) + ">";
    return s;
  };
  by_string.stop_strings = {"<" + std::to_string(free_run.tokens[2]) + ">"};
  const auto s2 = gen.generate(requests, greedy, by_string)[0].samples[0];
  CHECK(s2.finish == FinishReason::kStop);
  CHECK(s2.tokens.size() <= 3);
  CHECK(s2.text.find(by_string.stop_strings[0]) == std::string::npos);
}

TEST_CASE("bad generation input is an error naming the option") {
  auto model = test::tiny_model("qwen2");
  Generator gen(model);
  const auto V = model->config().vocab_size;
  const auto ok = test::make_requests({3}, V, 1);
  CHECK(error_of([&] { gen.generate({}, SamplingOptions{}, GenerateOptions{}); }).find("empty prompt list") !=
        std::string::npos);
  const auto ctx = model->config().max_position_embeddings;
  const auto too_long = test::make_requests({ctx}, V, 1);
  CHECK(error_of([&] {
          gen.generate(too_long, SamplingOptions{}, GenerateOptions{});
        }).find("longer than the context allows (max_position_embeddings") != std::string::npos);
  SamplingOptions bad_p;
  bad_p.top_p = 1.5;
  CHECK(error_of([&] { gen.generate(ok, bad_p, GenerateOptions{}); }).find("top_p = 1.5") != std::string::npos);
  SamplingOptions bad_t;
  bad_t.temperature = -1;
  CHECK(error_of([&] { gen.generate(ok, bad_t, GenerateOptions{}); }).find("temperature = -1") != std::string::npos);
  GenerateOptions bad_stop;
  bad_stop.stop_token_ids = {V + 5};
  CHECK(error_of([&] {
          gen.generate(ok, SamplingOptions{}, bad_stop);
        }).find("generate.stop_token_ids: unknown stop token " + std::to_string(V + 5)) != std::string::npos);
  GenerateOptions no_detok;
  no_detok.stop_strings = {"###"};
  CHECK(error_of([&] { gen.generate(ok, SamplingOptions{}, no_detok); }).find("generate.stop_strings") !=
        std::string::npos);
}

TEST_CASE("a completion ends at the context length with reason length") {
  auto model = test::tiny_model("qwen2");
  Generator gen(model);
  const auto ctx = model->config().max_position_embeddings;
  auto o = gen_options(50, false);
  o.use_model_eos = false;
  const auto g = gen.generate(test::make_requests({ctx - 3}, model->config().vocab_size, 1), warm_sampling(), o);
  CHECK(g[0].samples[0].tokens.size() == 3);
  CHECK(g[0].samples[0].finish == FinishReason::kLength);
}

TEST_CASE("recorded routing can be replayed in a training forward with autograd") {
  auto model = test::tiny_model("qwen3-moe");
  Generator gen(model);
  const auto groups =
      gen.generate(test::make_requests({4}, model->config().vocab_size, 2), warm_sampling(), gen_options(3, true));
  const auto& s = groups[0].samples[1];
  const auto lp = test::training_logprobs(model, groups[0].prompt, s, 0.8, true);  // grad enabled
  REQUIRE(lp.requires_grad());
  CHECK_NOTHROW(lp.sum().backward());
  CHECK((lp.detach() - test::as_tensor(s.logprobs)).abs().max().item<double>() <= 1e-5);
}

TEST_CASE("continuous batching: requests join as rows finish, with the completions and log-probs of waves") {
  // Twelve one-row requests, prompts of different lengths, room for 4 rows at once; many stop
  // ids make completion lengths vary, so rows finish at different steps.
  for (const std::string name : {"qwen3-moe", "deepseek-v3"}) {
    CAPTURE(name);
    auto model = test::tiny_model(name);
    Generator gen(model);
    const auto requests = test::make_requests({3, 9, 5, 12, 4, 7, 6, 10, 8, 2, 11, 5}, model->config().vocab_size, 1);
    auto options = gen_options(12, true);
    options.max_batch_rows = 4;
    for (int64_t id = 2; id < 14; ++id) options.stop_token_ids.push_back(id);
    GenerateStats continuous_stats, wave_stats;
    const auto continuous = gen.generate(requests, warm_sampling(), options, &continuous_stats);
    options.continuous_batching = false;
    const auto waves = gen.generate(requests, warm_sampling(), options, &wave_stats);
    bool varied = false;
    for (size_t r = 0; r < requests.size(); ++r)
      for (size_t s = 0; s < 1; ++s) {
        const auto& a = continuous[r].samples[s];
        const auto& b = waves[r].samples[s];
        REQUIRE(a.tokens == b.tokens);
        CHECK((test::as_tensor(a.logprobs) - test::as_tensor(b.logprobs)).abs().max().item<double>() <= 1e-5);
        for (size_t m = 0; m < a.routing.size(); ++m) CHECK(at::equal(a.routing[m], b.routing[m]));
        varied = varied || a.tokens.size() != continuous[0].samples[0].tokens.size();
      }
    REQUIRE(varied);
    // Requests joined a running batch; waves only ever start an empty one. The same tokens
    // were fed either way.
    CHECK(continuous_stats.joins > 0);
    CHECK(wave_stats.joins == 0);
    CHECK(continuous_stats.decode_tokens == wave_stats.decode_tokens);
    // The invariant holds for rows that joined a running batch.
    CHECK(invariant_error(model, continuous, 0.8, false) <= 1e-5);
  }
}
