// Router: hand-worked selections (bias, group limits, normalisation, scaling), routing
// replay, expert load, the balance losses and the aux-loss-free bias update.
#include <ATen/ATen.h>

#include <cmath>

#include "core/error.h"
#include "policy/layers/router.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too

using namespace rlft::policy;

namespace {

// Router logits whose sigmoid is exactly `s` (up to fp32 rounding).
at::Tensor logit_of(std::vector<float> s) {
  auto t = at::tensor(s, at::kFloat);
  return (t / (1.0 - t)).log().unsqueeze(0);
}

std::vector<int64_t> ids(const at::Tensor& t) {
  auto c = t.to(at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

}  // namespace

TEST_CASE("softmax top-K keeps the probabilities, and renormalises them with norm_topk_prob") {
  // softmax(ln 1, ln 2, ln 3, ln 4) = (0.1, 0.2, 0.3, 0.4)
  const auto logits = at::tensor({0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)}).unsqueeze(0);
  RouterOptions o;
  o.n_experts = 4;
  o.top_k = 2;
  auto r = route(logits, {}, o);
  CHECK(ids(r.indices) == std::vector<int64_t>{3, 2});
  CHECK(r.weights[0][0].item<float>() == doctest::Approx(0.4).epsilon(1e-6));
  CHECK(r.weights[0][1].item<float>() == doctest::Approx(0.3).epsilon(1e-6));
  o.norm_topk_prob = true;
  r = route(logits, {}, o);
  CHECK(r.weights[0][0].item<float>() == doctest::Approx(4.0 / 7.0).epsilon(1e-6));
  CHECK(r.weights[0][1].item<float>() == doctest::Approx(3.0 / 7.0).epsilon(1e-6));
}

TEST_CASE("the correction bias changes which experts are chosen but not their gate weights") {
  // s = (0.9, 0.8, 0.7, 0.6), bias (0, 0, 0.25, 0.1): selection scores (0.9, 0.8, 0.95, 0.7)
  // -> experts 2 and 0; gates from s: (0.7, 0.9) / 1.6 * 2.5.
  RouterOptions o;
  o.n_experts = 4;
  o.top_k = 2;
  o.scoring = "sigmoid";
  o.norm_topk_prob = true;
  o.routed_scaling_factor = 2.5;
  const auto bias = at::tensor({0.0f, 0.0f, 0.25f, 0.1f});
  const auto r = route(logit_of({0.9f, 0.8f, 0.7f, 0.6f}), bias, o);
  CHECK(ids(r.indices) == std::vector<int64_t>{2, 0});
  CHECK(r.weights[0][0].item<float>() == doctest::Approx(0.7 / 1.6 * 2.5).epsilon(1e-5));
  CHECK(r.weights[0][1].item<float>() == doctest::Approx(0.9 / 1.6 * 2.5).epsilon(1e-5));
  // Without the bias: experts 0 and 1.
  CHECK(ids(route(logit_of({0.9f, 0.8f, 0.7f, 0.6f}), {}, o).indices) == std::vector<int64_t>{0, 1});
}

TEST_CASE("group-limited routing keeps the groups with the best top-2 sums") {
  // Groups of two: g0 (0.95, 0.10) sum 1.05; g1 (0.60, 0.58) 1.18; g2 (0.57, 0.56) 1.13;
  // g3 (0.30, 0.20) 0.50. topk_group 2 keeps g1, g2: experts 2 and 3, though expert 0 has
  // the best single score.
  const auto logits = logit_of({0.95f, 0.10f, 0.60f, 0.58f, 0.57f, 0.56f, 0.30f, 0.20f});
  RouterOptions o;
  o.n_experts = 8;
  o.top_k = 2;
  o.scoring = "sigmoid";
  o.n_group = 4;
  o.topk_group = 2;
  CHECK(ids(route(logits, {}, o).indices) == std::vector<int64_t>{2, 3});
  // Max per group (DeepSeek-V2) keeps g0 and g1: experts 0 and 2.
  o.group_score = "max";
  CHECK(ids(route(logits, {}, o).indices) == std::vector<int64_t>{0, 2});
  // One group: no limit.
  o.n_group = 1;
  o.topk_group = 1;
  CHECK(ids(route(logits, {}, o).indices) == std::vector<int64_t>{0, 2});
}

TEST_CASE("the bias takes part in the group scores") {
  // g0 (0.5, 0.5) vs g1 (0.45, 0.45): g0 wins unbiased (1.0 vs 0.9); +0.2 on expert 2 gives
  // g1 1.1 and expert 2 the best selection score.
  const auto logits = logit_of({0.5f, 0.5f, 0.45f, 0.45f});
  RouterOptions o;
  o.n_experts = 4;
  o.top_k = 1;
  o.scoring = "sigmoid";
  o.n_group = 2;
  o.topk_group = 1;
  CHECK(ids(route(logits, {}, o).indices)[0] < 2);
  CHECK(ids(route(logits, at::tensor({0.0f, 0.0f, 0.2f, 0.0f}), o).indices) == std::vector<int64_t>{2});
}

TEST_CASE("replayed routing uses the given experts and recomputes their weights with gradient") {
  RouterOptions o;
  o.n_experts = 4;
  o.top_k = 2;
  o.norm_topk_prob = true;
  auto logits = at::tensor({0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)}).unsqueeze(0).requires_grad_(true);
  const auto replay = at::tensor({0L, 1L}).unsqueeze(0);
  const auto r = route(logits, {}, o, replay);
  CHECK(ids(r.indices) == std::vector<int64_t>{0, 1});
  CHECK(r.weights[0][0].item<float>() == doctest::Approx(1.0 / 3.0).epsilon(1e-6));
  CHECK(r.weights[0][1].item<float>() == doctest::Approx(2.0 / 3.0).epsilon(1e-6));
  r.weights.select(1, 0).sum().backward();
  CHECK(logits.grad().abs().sum().item<float>() > 0.0f);
  CHECK_THROWS_WITH_AS(route(logits, {}, o, at::tensor({0L}).unsqueeze(0)),
                       doctest::Contains("routing replay: expected indices [1, 2]"), rlft::Error);
}

TEST_CASE("expert load counts the assignments of real tokens only") {
  const auto idx = at::tensor({0L, 1L, 1L, 2L, 3L, 1L}).view({3, 2});
  CHECK(ids(expert_load(idx, {}, 4)) == std::vector<int64_t>{1, 3, 1, 1});
  const auto valid = at::tensor({1, 0, 1}).to(at::kBool);
  CHECK(ids(expert_load(idx, valid, 4)) == std::vector<int64_t>{1, 2, 0, 1});
}

TEST_CASE("the aux-loss-free update moves each bias by gamma against its load") {
  auto bias = at::zeros({4});
  update_router_bias_tensor(bias, at::tensor({10L, 2L, 6L, 6L}), 0.001);  // mean 6
  CHECK(bias[0].item<float>() == doctest::Approx(-0.001));
  CHECK(bias[1].item<float>() == doctest::Approx(0.001));
  CHECK(bias[2].item<float>() == 0.0f);
  CHECK(bias[3].item<float>() == 0.0f);
}

TEST_CASE("sequence-wise balance loss: table of hand-worked values") {
  // One sequence, T = 2, E = 2, K = 1; s' = s / sum_j s: ((0.8, 0.2), (0.5, 0.5)), P = (0.65, 0.35).
  const auto scores = at::tensor({0.8f, 0.2f, 0.6f, 0.6f}).view({1, 2, 2});
  const auto valid = at::ones({1, 2}, at::kBool);
  struct Row {
    std::vector<int64_t> chosen;
    double loss;  // sum_i f_i P_i, f_i = E / (K T) * count_i
  };
  for (const Row& row : {Row{{0, 1}, 1.0 * 0.65 + 1.0 * 0.35}, Row{{0, 0}, 2.0 * 0.65}, Row{{1, 1}, 2.0 * 0.35}}) {
    const auto idx = at::tensor(row.chosen).view({1, 2, 1});
    CHECK(sequence_balance_loss(scores, idx, valid).item<float>() == doctest::Approx(row.loss).epsilon(1e-6));
  }
  // A padding token changes nothing: T counts real tokens.
  const auto scores3 = at::tensor({0.8f, 0.2f, 0.6f, 0.6f, 0.1f, 0.9f}).view({1, 3, 2});
  const auto idx3 = at::tensor({0L, 0L, 1L}).view({1, 3, 1});
  const auto valid3 = at::tensor({1, 1, 0}).to(at::kBool).view({1, 3});
  CHECK(sequence_balance_loss(scores3, idx3, valid3).item<float>() == doctest::Approx(1.3).epsilon(1e-6));
}

TEST_CASE("Switch aux loss: E * sum f * P, as transformers computes it") {
  // Two tokens, E = 2, K = 1.
  const auto spread = at::tensor({0.75f, 0.25f, 0.25f, 0.75f}).view({2, 2}).log();
  const auto same = at::tensor({0.75f, 0.25f, 0.75f, 0.25f}).view({2, 2}).log();
  CHECK(switch_aux_loss({switch_terms(spread, {}, 1)}).item<float>() == doctest::Approx(1.0).epsilon(1e-6));
  CHECK(switch_aux_loss({switch_terms(same, {}, 1)}).item<float>() == doctest::Approx(1.5).epsilon(1e-6));
  // Two layers: the means over layers enter the product.
  const auto two = switch_aux_loss({switch_terms(spread, {}, 1), switch_terms(same, {}, 1)});
  // f̄ = ((0.5 + 1) / 2, (0.5 + 0) / 2) = (0.75, 0.25); P̄ = (0.625, 0.375)
  CHECK(two.item<float>() == doctest::Approx(2.0 * (0.75 * 0.625 + 0.25 * 0.375)).epsilon(1e-6));
}

TEST_CASE("router options are validated with the key in the message") {
  RouterOptions o;
  o.n_experts = 6;
  o.top_k = 2;
  o.n_group = 4;
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("n_group = 4: must divide n_routed_experts (6)"), rlft::Error);
  o.n_group = 1;
  o.scoring = "relu";
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("known scoring functions are softmax, sigmoid"), rlft::Error);
}
