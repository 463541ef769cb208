// Sampling steps on hand-worked logits, the chain, the row generators and logprobs.h.
#include <cmath>
#include <limits>

#include "core/error.h"
#include "rollout/logprobs.h"
#include "rollout/sampling.h"
#include "tests/support/text_util.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

using namespace rlft;
using namespace rlft::rollout;

namespace {

const float kInf = std::numeric_limits<float>::infinity();

at::Tensor row(std::vector<float> v) {
  return at::tensor(v).unsqueeze(0);
}

void check_row(const at::Tensor& got, std::vector<float> want) {
  REQUIRE(got.size(1) == static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    const float g = got[0][static_cast<int64_t>(i)].item<float>();
    CAPTURE(i);
    if (std::isinf(want[i]))
      CHECK(g == want[i]);
    else
      CHECK(g == doctest::Approx(want[i]).epsilon(1e-6));
  }
}

at::Tensor log_probs(std::vector<float> p) {
  return row(p).log();
}

}  // namespace

TEST_CASE("temperature divides the logits") {
  check_row(apply_temperature(row({2, 4, -1}), 2.0), {1, 2, -0.5f});
}

TEST_CASE("top-k keeps the k largest logits and their ties") {
  check_row(apply_top_k(row({1, 3, 2, 0}), 2), {-kInf, 3, 2, -kInf});
  check_row(apply_top_k(row({1, 2, 2, 0}), 2), {-kInf, 2, 2, -kInf});
  check_row(apply_top_k(row({1, 3, 2, 0}), 10), {1, 3, 2, 0});
}

TEST_CASE("top-p keeps the smallest head reaching p, and always the best token") {
  // probabilities 0.5, 0.3, 0.15, 0.05 (given in shuffled order)
  const auto l = log_probs({0.15f, 0.5f, 0.05f, 0.3f});
  check_row(apply_top_p(l, 0.6), {-kInf, std::log(0.5f), -kInf, std::log(0.3f)});
  check_row(apply_top_p(l, 0.85), {std::log(0.15f), std::log(0.5f), -kInf, std::log(0.3f)});
  check_row(apply_top_p(l, 0.1), {-kInf, std::log(0.5f), -kInf, -kInf});
  check_row(apply_top_p(l, 1.0), {std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)});
}

TEST_CASE("min-p drops tokens below min_p times the best probability") {
  const auto l = log_probs({0.5f, 0.3f, 0.15f, 0.05f});
  check_row(apply_min_p(l, 0.4), {std::log(0.5f), std::log(0.3f), -kInf, -kInf});
  check_row(apply_min_p(l, 0.2), {std::log(0.5f), std::log(0.3f), std::log(0.15f), -kInf});
}

TEST_CASE("repetition penalty divides positive and multiplies negative logits of seen tokens") {
  check_row(apply_repetition_penalty(row({2, -2, 1}), row({1, 1, 0}), 2.0), {1, -4, 1});
}

TEST_CASE("presence penalty subtracts from every generated token once") {
  check_row(apply_presence_penalty(row({2, -2, 1}), row({0, 3, 0}), 0.5), {2, -2.5f, 1});
}

TEST_CASE("the chain holds only the steps the options turn on, in order") {
  const auto reg = builtin_sampling_steps();
  SamplingOptions o;
  CHECK(SamplingChain(o, reg).step_names().empty());
  o.temperature = 0.7;
  o.top_p = 0.9;
  o.repetition_penalty = 1.1;
  o.top_k = 5;
  const std::vector<std::string> want{"repetition_penalty", "temperature", "top_k", "top_p"};
  CHECK(SamplingChain(o, reg).step_names() == want);
  CHECK(SamplingChain(o, reg).needs_counts());
  // temperature then top-k on hand-worked values
  SamplingOptions t;
  t.temperature = 2.0;
  t.top_k = 1;
  check_row(SamplingChain(t, reg).apply(row({2, 4}), {}), {-kInf, 2});
}

TEST_CASE("an unknown step name lists the known ones") {
  const auto reg = builtin_sampling_steps();
  const auto msg = error_of([&] { SamplingChain(SamplingOptions{}, reg, {"temperature", "top_q"}); });
  CHECK(msg.find("unknown sampling step 'top_q'") != std::string::npos);
  CHECK(msg.find("top_p") != std::string::npos);
}

TEST_CASE("bad sampling options are errors naming the option") {
  auto msg = [](auto set) {
    SamplingOptions o;
    set(o);
    return error_of([&] { o.validate(); });
  };
  CHECK(msg([](SamplingOptions& o) { o.top_p = 0.0; }).find("top_p = 0: must be in (0, 1]") != std::string::npos);
  CHECK(msg([](SamplingOptions& o) { o.top_p = 1.5; }).find("top_p = 1.5") != std::string::npos);
  CHECK(msg([](SamplingOptions& o) { o.temperature = -0.5; }).find("temperature = -0.5: must be >= 0") !=
        std::string::npos);
  CHECK(msg([](SamplingOptions& o) { o.top_k = -1; }).find("top_k = -1") != std::string::npos);
  CHECK(msg([](SamplingOptions& o) { o.min_p = 1.0; }).find("min_p = 1") != std::string::npos);
  CHECK(msg([](SamplingOptions& o) { o.repetition_penalty = 0.0; }).find("repetition_penalty = 0") !=
        std::string::npos);
  CHECK_THROWS_AS(SamplingChain(SamplingOptions{-1.0}, builtin_sampling_steps()), ConfigError);
}

TEST_CASE("greedy picks the argmax; sampling follows the distribution with the row's generator") {
  const auto reg = builtin_sampling_steps();
  SamplingOptions greedy;
  greedy.temperature = 0.0;
  std::vector<at::Generator> none;
  CHECK(SamplingChain(greedy, reg)
            .sample(at::tensor({1.f, 5.f, 2.f, 0.f, 3.f, 9.f}).view({2, 3}), {}, none)
            .equal(at::tensor({1, 2}, at::kLong)));

  const SamplingChain chain(SamplingOptions{}, reg);
  const int64_t n = 4000;
  const auto logits = log_probs({0.5f, 0.3f, 0.2f}).expand({n, 3}).contiguous();
  std::vector<at::Generator> gens;
  for (int64_t i = 0; i < n; ++i) gens.push_back(make_row_generator(3, 0, static_cast<uint64_t>(i)));
  const auto draws = chain.sample(logits, {}, gens);
  const auto freq = at::bincount(draws, {}, 3).to(at::kDouble) / n;
  CHECK(freq[0].item<double>() == doctest::Approx(0.5).epsilon(0.08));
  CHECK(freq[1].item<double>() == doctest::Approx(0.3).epsilon(0.1));
  CHECK(freq[2].item<double>() == doctest::Approx(0.2).epsilon(0.12));

  // the same (seed, request, sample) gives the same stream; another sample another one
  std::vector<at::Generator> a{make_row_generator(3, 5, 1)}, b{make_row_generator(3, 5, 1)};
  const auto one = log_probs({0.25f, 0.25f, 0.25f, 0.25f});
  std::vector<int64_t> da, db, dc;
  std::vector<at::Generator> c{make_row_generator(3, 5, 2)};
  for (int i = 0; i < 32; ++i) {
    da.push_back(chain.sample(one, {}, a).item<int64_t>());
    db.push_back(chain.sample(one, {}, b).item<int64_t>());
    dc.push_back(chain.sample(one, {}, c).item<int64_t>());
  }
  CHECK(da == db);
  CHECK(da != dc);
}

TEST_CASE("token log-probs are log_softmax(logits / T) of the chosen token") {
  const auto logits = at::tensor({0.f, std::log(3.f)}).view({1, 2});
  const auto tok = at::tensor({1}, at::kLong);
  CHECK(token_logprobs(logits, tok, 1.0).item<float>() == doctest::Approx(std::log(0.75)));
  const double s3 = std::sqrt(3.0);
  CHECK(token_logprobs(logits, tok, 2.0).item<float>() == doctest::Approx(std::log(s3 / (1 + s3))));
  CHECK(token_logprobs(logits, tok, 0.0).item<float>() == doctest::Approx(std::log(0.75)));  // greedy: T = 1
  // shifted: position j predicts token j + 1
  const auto l3 = at::zeros({1, 3, 4});
  l3[0][1][2] = std::log(5.f);
  const auto got = shifted_token_logprobs(l3, at::tensor({0, 1, 2}, at::kLong).view({1, 3}), 1.0);
  CHECK(got[0][0].item<float>() == doctest::Approx(std::log(0.25)));
  CHECK(got[0][1].item<float>() == doctest::Approx(std::log(5.0 / 8.0)));
}
