// Speculative rollout with the MTP module: the samples keep the policy's distribution
// (chi-square against the exact marginals on the tiny vocabulary), greedy output and the
// recorded log-probs and routing equal plain decoding's, and bad options are errors.
#include <torch/torch.h>

#include <cmath>
#include <map>

#include "rollout/generator.h"
#include "tests/rollout/rollout_test_util.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

using namespace rlft;
using namespace rlft::rollout;
using rlft::test::error_of;

namespace {

GenerateOptions speculative_options(int64_t max_new, int64_t draft, bool routing = false) {
  GenerateOptions g;
  g.max_new_tokens = max_new;
  g.use_model_eos = false;
  g.record_routing = routing;
  g.speculative_tokens = draft;
  g.seed = 5;
  return g;
}

// The chain's next-token distribution after each prefix [R, T] (same length): [R, V].
at::Tensor next_token_probs(policy::CausalLM& model, const at::Tensor& prefixes, const SamplingChain& chain) {
  at::NoGradGuard no_grad;
  policy::ForwardInputs in;
  in.tokens = prefixes;
  in.logits = policy::LogitsScope::kLast;
  const auto logits = model->forward(in).logits.select(1, 0);
  return at::softmax(chain.apply(logits, {}), -1).to(at::kDouble);
}

// Exact marginals of completion tokens 1, 2 and 3 after `prompt` under the chain: [3, V].
at::Tensor exact_marginals(policy::CausalLM& model, const std::vector<int64_t>& prompt, const SamplingChain& chain) {
  const int64_t V = model->config().vocab_size;
  const auto base = at::tensor(prompt, at::kLong).unsqueeze(0);  // [1, P]
  const auto p1 = next_token_probs(model, base, chain)[0];       // [V]
  const auto ids = at::arange(V, at::kLong);
  const auto two = at::cat({base.expand({V, -1}), ids.unsqueeze(1)}, 1);  // [V, P + 1]
  const auto p2_given = next_token_probs(model, two, chain);              // [V, V]: t1 → t2
  const auto p2 = at::matmul(p1.unsqueeze(0), p2_given)[0];
  // t3: over every (t1, t2) pair, weighted by p(t1) p(t2 | t1).
  const auto three = at::cat({two.repeat_interleave(V, 0), ids.repeat({V}).unsqueeze(1)}, 1);  // [V², P + 2]
  const auto p3_given = next_token_probs(model, three, chain);                                 // [V², V]
  const auto pair = (p1.unsqueeze(1) * p2_given).reshape({1, V * V});
  const auto p3 = at::matmul(pair, p3_given)[0];
  return at::stack({p1, p2, p3}, 0);
}

// Pearson's statistic of `counts` against probabilities `expected` (n draws), cells with an
// expected count under 5 pooled; returns {statistic, degrees of freedom}.
std::pair<double, int64_t> chi_square(const std::vector<int64_t>& counts, const at::Tensor& expected, int64_t n) {
  double stat = 0.0, pooled_expected = 0.0;
  int64_t pooled_count = 0, cells = 0;
  for (size_t v = 0; v < counts.size(); ++v) {
    const double e = expected[static_cast<int64_t>(v)].item<double>() * static_cast<double>(n);
    if (e < 5.0) {
      pooled_expected += e;
      pooled_count += counts[v];
      continue;
    }
    stat += (counts[v] - e) * (counts[v] - e) / e;
    ++cells;
  }
  if (pooled_expected > 0.0) {
    stat += (pooled_count - pooled_expected) * (pooled_count - pooled_expected) / std::max(pooled_expected, 1e-9);
    ++cells;
  }
  return {stat, cells - 1};
}

// The chi-square quantile at 1 − 1e-4 (Wilson–Hilferty; z = 3.719).
double chi_square_bound(int64_t df) {
  const double d = static_cast<double>(df), z = 3.719;
  return d * std::pow(1.0 - 2.0 / (9.0 * d) + z * std::sqrt(2.0 / (9.0 * d)), 3.0);
}

}  // namespace

TEST_CASE("speculative samples follow the policy's distribution (chi-square on the first three tokens)") {
  auto model = test::tiny_model("deepseek-v3");
  REQUIRE(model->can_draft());
  const int64_t V = model->config().vocab_size;
  const std::vector<int64_t> prompt{0, 17, 42, 5, 63};
  struct Case {
    SamplingOptions sampling;
    int64_t draft;
  };
  SamplingOptions warm;
  warm.temperature = 0.7;
  warm.top_k = 30;
  std::vector<Case> cases{{SamplingOptions{}, 2}, {warm, 3}};
  for (const auto& c : cases) {
    CAPTURE(c.draft);
    const SamplingChain chain(c.sampling, builtin_sampling_steps());
    const auto exact = exact_marginals(model, prompt, chain);  // [3, V]
    const int64_t n = 3000;
    Generator gen(model);
    GenerateStats stats;
    auto options = speculative_options(3, c.draft);
    options.max_batch_rows = 1000;
    const auto groups = gen.generate({Request{prompt, n, 9}}, c.sampling, options, &stats);
    std::vector<std::vector<int64_t>> counts(3, std::vector<int64_t>(static_cast<size_t>(V), 0));
    for (const auto& s : groups[0].samples) {
      REQUIRE(s.tokens.size() == 3);
      for (size_t j = 0; j < 3; ++j) ++counts[j][static_cast<size_t>(s.tokens[j])];
    }
    for (int64_t j = 0; j < 3; ++j) {
      const auto [stat, df] = chi_square(counts[static_cast<size_t>(j)], exact[j], n);
      CAPTURE(j);
      CAPTURE(df);
      CHECK(df >= 5);
      CHECK(stat <= chi_square_bound(df));
    }
    // Both branches of the rule ran: some drafts kept, some replaced.
    CHECK(stats.drafted_tokens > 0);
    CHECK(stats.accepted_tokens > 0);
    CHECK(stats.accepted_tokens < stats.drafted_tokens);
  }
}

TEST_CASE("the chi-square check catches a sampler that ignores the rejection rule") {
  // Drawing the second token from the draft module alone gives a different distribution; the
  // same statistic must reject it, so the test above can fail.
  auto model = test::tiny_model("deepseek-v3");
  const std::vector<int64_t> prompt{0, 17, 42, 5, 63};
  const SamplingChain chain(SamplingOptions{}, builtin_sampling_steps());
  const auto exact = exact_marginals(model, prompt, chain);
  at::NoGradGuard no_grad;
  // The draft module's distribution of token 2 given each token 1, weighted by p(token 1).
  const int64_t V = model->config().vocab_size, P = static_cast<int64_t>(prompt.size());
  const auto base = at::tensor(prompt, at::kLong).unsqueeze(0);
  policy::ForwardInputs in;
  in.tokens = base;
  in.logits = policy::LogitsScope::kNone;
  in.return_hidden = true;
  const auto hidden = model->forward(in).hidden;  // [1, P, D]
  auto cache = model->make_draft_cache(V);
  const auto next = at::cat({base.narrow(1, 1, P - 1).expand({V, -1}), at::arange(V, at::kLong).unsqueeze(1)}, 1);
  const auto logits = model->mtp_draft(hidden.expand({V, -1, -1}), next, at::ones({V, P}, at::kBool), *cache).second;
  const auto q2 = at::matmul(exact[0].unsqueeze(0), at::softmax(logits, -1).to(at::kDouble))[0];
  const int64_t n = 3000;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto draws = at::multinomial(q2.to(at::kFloat), n, true, gen);
  std::vector<int64_t> counts(static_cast<size_t>(V), 0);
  for (int64_t i = 0; i < n; ++i) ++counts[static_cast<size_t>(draws[i].item<int64_t>())];
  const auto [stat, df] = chi_square(counts, exact[1], n);
  CHECK(stat > chi_square_bound(df));
}

TEST_CASE("greedy speculative rollout equals greedy decoding, log-probs and routing included") {
  auto model = test::tiny_model("deepseek-v3");
  Generator gen(model);
  SamplingOptions greedy;
  greedy.temperature = 0.0;
  const auto requests = test::make_requests({3, 11, 6}, model->config().vocab_size, 2);
  const auto plain = gen.generate(requests, greedy, speculative_options(12, 0, true));
  for (int64_t draft : {1, 2, 4}) {
    CAPTURE(draft);
    GenerateStats stats;
    const auto fast = gen.generate(requests, greedy, speculative_options(12, draft, true), &stats);
    CHECK(stats.drafted_tokens > 0);
    for (size_t r = 0; r < plain.size(); ++r)
      for (size_t s = 0; s < plain[r].samples.size(); ++s) {
        const auto& a = plain[r].samples[s];
        const auto& b = fast[r].samples[s];
        REQUIRE(a.tokens == b.tokens);
        CHECK((test::as_tensor(a.logprobs) - test::as_tensor(b.logprobs)).abs().max().item<double>() <= 1e-5);
        REQUIRE(a.routing.size() == b.routing.size());
        for (size_t m = 0; m < a.routing.size(); ++m) CHECK(at::equal(a.routing[m], b.routing[m]));
      }
  }
}

TEST_CASE("speculative rollout records the policy's log-probs (the training forward's, fp32)") {
  auto model = test::tiny_model("deepseek-v3");
  Generator gen(model);
  SamplingOptions s;
  s.temperature = 0.9;
  s.top_p = 0.9;
  const auto requests = test::make_requests({4, 9}, model->config().vocab_size, 3);
  GenerateOptions o = speculative_options(10, 3, true);
  o.stop_token_ids = {7};  // a stop inside the kept drafts must end the completion there
  const auto groups = gen.generate(requests, s, o);
  at::NoGradGuard no_grad;
  double worst = 0.0;
  for (const auto& g : groups)
    for (const auto& sample : g.samples) {
      REQUIRE(sample.logprobs.size() == sample.tokens.size());
      for (size_t i = 0; i + 1 < sample.tokens.size(); ++i) CHECK(sample.tokens[i] != 7);
      REQUIRE(sample.routing[0].size(0) == static_cast<int64_t>(g.prompt.size() + sample.tokens.size()));
      for (bool replay : {false, true}) {
        const auto train = test::training_logprobs(model, g.prompt, sample, 0.9, replay);
        worst = std::max(worst, (train - test::as_tensor(sample.logprobs)).abs().max().item<double>());
      }
    }
  CHECK(worst <= 1e-5);
}

TEST_CASE("speculative rollout: bad options are errors naming the option") {
  const auto requests = test::make_requests({4}, 97, 1);
  Generator plain(test::tiny_model("qwen2-moe"));
  const auto no_mtp = error_of([&] { plain.generate(requests, SamplingOptions{}, speculative_options(4, 2)); });
  CHECK(test::contains(no_mtp, "speculative_tokens = 2"));
  CHECK(test::contains(no_mtp, "no MTP module"));
  Generator gen(test::tiny_model("deepseek-v3"));
  SamplingOptions penalised;
  penalised.repetition_penalty = 1.2;
  CHECK(test::contains(error_of([&] { gen.generate(requests, penalised, speculative_options(4, 2)); }),
                       "repetition_penalty"));
  CHECK(test::contains(error_of([&] { gen.generate(requests, SamplingOptions{}, speculative_options(4, 16)); }),
                       "speculative_tokens = 16"));
}
