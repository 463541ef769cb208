#include "rl/losses.h"

#include <doctest/doctest.h>

#include <cmath>

#include "core/error.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

using namespace rlft::rl;

namespace {

at::Tensor row(std::vector<float> v) {
  return at::tensor(v, at::kFloat).unsqueeze(0);
}  // [1, T]

LossInputs single(std::vector<float> logp, std::vector<float> old_logp, std::vector<float> adv) {
  LossInputs in;
  in.logp = row(logp).requires_grad_(true);
  in.old_logp = row(old_logp);
  in.advantages = row(adv);
  in.mask = at::ones_like(in.old_logp);
  return in;
}

}  // namespace

TEST_CASE("on-policy with one iteration the ratio is exactly 1 and nothing is clipped") {
  LossInputs in;
  in.logp = at::tensor({-1.0f, -2.0f, -0.5f, -3.0f}, at::kFloat).view({2, 2}).requires_grad_(true);
  in.old_logp = in.logp.detach().clone();
  in.advantages = at::tensor({1.0f, -0.5f}, at::kFloat);
  in.mask = at::ones({2, 2}, at::kFloat);
  const auto out = policy_loss(in, {});
  CHECK(out.ratio_mean == 1.0);
  CHECK(out.clip_fraction == 0.0);
  CHECK(out.approx_kl_old == 0.0);
  CHECK(out.loss.item<double>() == doctest::Approx(-0.25));  // −mean(1, −0.5)
  out.loss.backward();
  // d/dlogp of −A·ρ/(|o|·N) = −A / 4 at ρ = 1
  auto g = in.logp.grad();
  CHECK(g[0][0].item<double>() == doctest::Approx(-0.25));
  CHECK(g[1][1].item<double>() == doctest::Approx(0.125));
}

TEST_CASE("clipping follows the hand-worked cases, with clip-higher and dual clip") {
  struct Row {
    double ratio, adv, want_loss;
    bool grad_flows;
  };
  // ε_low 0.2, ε_high 0.28
  const Row rows[] = {
      {1.5, 1.0, -1.28, false},  // A > 0, above 1 + ε_high: clipped
      {1.1, 1.0, -1.1, true},    // inside
      {0.5, 1.0, -0.5, true},    // A > 0 below 1 − ε_low: the unclipped (smaller) objective
      {0.5, -1.0, 0.8, false},   // A < 0 below 1 − ε_low: clipped
      {1.5, -1.0, 1.5, true},    // A < 0 above: unclipped, pessimistic
  };
  for (const auto& r : rows) {
    auto in = single({static_cast<float>(std::log(r.ratio))}, {0.0f}, {static_cast<float>(r.adv)});
    LossOptions o;
    o.clip_low = 0.2;
    o.clip_high = 0.28;
    const auto out = policy_loss(in, o);
    CHECK_MESSAGE(out.loss.item<double>() == doctest::Approx(r.want_loss).epsilon(1e-5), r.ratio << " " << r.adv);
    out.loss.backward();
    CHECK((std::abs(in.logp.grad()[0][0].item<double>()) > 1e-9) == r.grad_flows);
    CHECK(out.clip_fraction == (r.grad_flows ? 0.0 : 1.0));
  }
  auto in = single({static_cast<float>(std::log(5.0))}, {0.0f}, {-1.0f});
  LossOptions o;
  o.dual_clip = 3.0;
  CHECK(policy_loss(in, o).loss.item<double>() == doctest::Approx(3.0));  // min(max(5, 1.2), 3)
}

TEST_CASE("KL estimators match their formulas") {
  const auto logp = row({static_cast<float>(std::log(0.5))});
  const auto ref = row({static_cast<float>(std::log(0.25))});
  // x = log(π_ref/π_θ) = log 0.5
  CHECK(kl_estimate(logp, ref, KlEstimator::kK1).item<double>() == doctest::Approx(0.693147));
  CHECK(kl_estimate(logp, ref, KlEstimator::kK2).item<double>() == doctest::Approx(0.240227));
  CHECK(kl_estimate(logp, ref, KlEstimator::kK3).item<double>() == doctest::Approx(0.193147));
  CHECK(kl_estimate(ref, ref, KlEstimator::kK3).item<double>() == 0.0);
}

TEST_CASE("aggregations weigh tokens and sequences as their papers say") {
  const auto v = at::tensor({1.0f, 2.0f, 0.0f, 3.0f, 0.0f, 0.0f}, at::kFloat).view({2, 3});
  const auto m = at::tensor({1.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f}, at::kFloat).view({2, 3});
  CHECK(aggregate(v, m, LossAggregation::kTokenMean, 1).item<double>() == doctest::Approx(2.0));
  CHECK(aggregate(v, m, LossAggregation::kSeqMeanTokenMean, 1).item<double>() == doctest::Approx(2.25));
  CHECK(aggregate(v, m, LossAggregation::kSeqMeanTokenSumNorm, 4).item<double>() == doctest::Approx(0.75));
}

TEST_CASE("the KL term enters the loss with its beta") {
  auto in = single({-1.0f}, {-1.0f}, {0.0f});
  in.ref_logp = row({-1.5f});
  LossOptions o;
  o.kl_beta = 0.1;
  const double k3 = std::exp(-0.5) + 0.5 - 1.0;
  const auto out = policy_loss(in, o);
  CHECK(out.kl == doctest::Approx(k3));
  CHECK(out.loss.item<double>() == doctest::Approx(0.1 * k3));
}

TEST_CASE("the sequence-level ratio is the geometric mean of token ratios") {
  auto in = single({0.1f, 0.3f}, {0.0f, 0.0f}, {1.0f, 1.0f});
  LossOptions o;
  o.ratio_level = RatioLevel::kSequence;
  o.clip_high = 10;
  const auto out = policy_loss(in, o);
  CHECK(out.ratio_mean == doctest::Approx(std::exp(0.2)));
  CHECK(out.loss.item<double>() == doctest::Approx(-std::exp(0.2)));
}

TEST_CASE("masked tokens contribute nothing") {
  auto in = single({0.0f, 5.0f}, {0.0f, 0.0f}, {1.0f, 1.0f});
  in.mask = row({1.0f, 0.0f});
  const auto out = policy_loss(in, {});
  CHECK(out.loss.item<double>() == doctest::Approx(-1.0));
  out.loss.backward();
  CHECK(in.logp.grad()[0][1].item<double>() == 0.0);
}

TEST_CASE("the entropy bonus lowers the loss by coef times the mean entropy") {
  // Two tokens whose distributions are uniform over 4 ids (the trainer takes entropies from
  // policy/head_logprobs.h, tested there).
  const auto h = at::full({1, 2}, std::log(4.0), at::kFloat);
  auto in = single({0.0f, 0.0f}, {0.0f, 0.0f}, {0.0f, 0.0f});
  in.entropy = h;
  LossOptions o;
  o.entropy_coef = 0.01;
  CHECK(policy_loss(in, o).loss.item<double>() == doctest::Approx(-0.01 * std::log(4.0)));
}

TEST_CASE("a truncated importance weight corrects for behaviour log-probs") {
  auto in = single({0.0f}, {0.0f}, {1.0f});
  in.behaviour_logp = row({static_cast<float>(std::log(0.25))});  // π_old/π_behaviour = 4
  LossOptions o;
  o.behaviour_is_cap = 2.0;
  const auto out = policy_loss(in, o);
  CHECK(out.loss.item<double>() == doctest::Approx(-2.0));
  CHECK(out.is_capped_fraction == 1.0);  // weight 4, capped at 2
  o.behaviour_is_cap = 8.0;
  const auto wide = policy_loss(in, o);
  CHECK(wide.loss.item<double>() == doctest::Approx(-4.0));
  CHECK(wide.is_capped_fraction == 0.0);
}

TEST_CASE("invalid options and shapes are named") {
  LossOptions o;
  o.clip_low = 1.5;
  CHECK_THROWS_WITH_AS(o.validate(), "clip_low = 1.5: must be in (0, 1)", rlft::Error);
  auto in = single({0.0f, 0.0f}, {0.0f}, {1.0f});
  CHECK_THROWS_WITH_AS(policy_loss(in, {}), "policy loss: old_logp has shape 1x1, expected 1x2 like logp", rlft::Error);
  CHECK_THROWS_AS(parse_kl_estimator("k4"), rlft::Error);
  CHECK_THROWS_AS(parse_loss_aggregation("sum"), rlft::Error);
}
