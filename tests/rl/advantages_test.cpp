#include "rl/advantages.h"

#include <doctest/doctest.h>

#include "core/error.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

using namespace rlft::rl;

namespace {

at::Tensor rewards(std::vector<std::vector<double>> rows) {
  const int64_t p = static_cast<int64_t>(rows.size()), g = static_cast<int64_t>(rows[0].size());
  auto t = at::empty({p, g}, at::kDouble);
  for (int64_t i = 0; i < p; ++i)
    for (int64_t j = 0; j < g; ++j) t[i][j] = rows[i][j];
  return t;
}

void check_values(const at::Tensor& got, std::vector<std::vector<double>> want) {
  REQUIRE(got.size(0) == static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i)
    for (size_t j = 0; j < want[i].size(); ++j)
      CHECK(got[i][j].item<double>() == doctest::Approx(want[i][j]).epsilon(1e-5));
}

}  // namespace

TEST_CASE("grpo divides the group-centred rewards by the group's unbiased std") {
  // mean 0.5; std = sqrt(4 · 0.25 / 3) = 0.57735 → ±0.5 / 0.57735 = ±0.866025
  auto a = compute_advantages(rewards({{1, 0, 0, 1}}), {});
  check_values(a.values, {{0.866025, -0.866025, -0.866025, 0.866025}});
  CHECK(a.n_zero_variance == 0);
}

TEST_CASE("identical rewards in a group give zero advantage and are counted") {
  auto a = compute_advantages(rewards({{1, 1, 1}, {0, 0, 0}, {2, 0, 1}}), {});
  check_values(a.values, {{0, 0, 0}, {0, 0, 0}, {1, -1, 0}});  // std of {2,0,1} is 1
  CHECK(a.n_zero_variance == 2);
  CHECK(a.zero_variance[0].item<bool>());
  CHECK_FALSE(a.zero_variance[2].item<bool>());
}

TEST_CASE("dr_grpo subtracts the group mean only") {
  AdvantageOptions o;
  o.estimator = "dr_grpo";
  check_values(compute_advantages(rewards({{1, 0, 0, 1}}), o).values, {{0.5, -0.5, -0.5, 0.5}});
}

TEST_CASE("rloo subtracts the mean of the other completions") {
  AdvantageOptions o;
  o.estimator = "rloo";
  // 1 − (2+3)/2 = −1.5;  2 − (1+3)/2 = 0;  3 − (1+2)/2 = 1.5
  check_values(compute_advantages(rewards({{1, 2, 3}}), o).values, {{-1.5, 0, 1.5}});
}

TEST_CASE("reinforce_pp whitens the group-centred values over the batch's tokens") {
  AdvantageOptions o;
  o.estimator = "reinforce_pp";
  // centred [[.5, −.5], [1, −1]] with 1, 3, 2, 2 tokens: 8 token values
  //   .5, −.5 ×3, 1 ×2, −1 ×2; mean −1/8 = −.125; unbiased variance
  //   (.625² + 3·.375² + 2·1.125² + 2·.875²)/7 = 0.6964286, std 0.8345230
  // (.5 + .125)/.834523 = 0.748931; (−.5 + .125)/.834523 = −0.449359;
  // (1 + .125)/.834523 = 1.348076; (−1 + .125)/.834523 = −1.048503
  const auto tokens = rewards({{1, 3}, {2, 2}});
  check_values(compute_advantages(rewards({{1, 0}, {3, 1}}), o, tokens).values,
               {{0.748931, -0.449359}, {1.348076, -1.048503}});
  CHECK_THROWS_WITH_AS(compute_advantages(rewards({{1, 0}, {3, 1}}), o),
                       "advantage scale whiten_tokens needs the completions' token counts [P, G]", rlft::Error);
  // One token each: the same as whitening over sequences.
  o.scale = AdvantageScale::kWhiten;
  // centred [[.5, −.5], [1, −1]], mean 0, unbiased std sqrt(2.5/3) = 0.912871
  check_values(compute_advantages(rewards({{1, 0}, {3, 1}}), o).values, {{0.547723, -0.547723}, {1.095445, -1.095445}});
  o.scale = AdvantageScale::kWhitenTokens;
  check_values(compute_advantages(rewards({{1, 0}, {3, 1}}), o, rewards({{1, 1}, {1, 1}})).values,
               {{0.547723, -0.547723}, {1.095445, -1.095445}});
}

TEST_CASE("scale: batch is TRL's scale_rewards=batch: group-centred over the std of the raw rewards") {
  AdvantageOptions o;
  o.estimator = "grpo";
  o.scale = AdvantageScale::kBatch;
  // rewards 1, 0, 3, 1: mean 1.25, unbiased std sqrt((.0625+1.5625+3.0625+.0625)/3) = 1.258306
  // centred [[.5, −.5], [1, −1]] / 1.258306
  check_values(compute_advantages(rewards({{1, 0}, {3, 1}}), o).values, {{0.397360, -0.397360}, {0.794719, -0.794719}});
}

TEST_CASE("the scale can be chosen independently of the estimator") {
  AdvantageOptions o;
  o.estimator = "grpo";
  o.scale = AdvantageScale::kNone;
  check_values(compute_advantages(rewards({{2, 0}}), o).values, {{1, -1}});
  CHECK(parse_advantage_scale("batch") == AdvantageScale::kBatch);
  CHECK_THROWS_WITH_AS(parse_advantage_scale("global"),
                       "unknown advantage scale 'global': known scales are batch, group, none, whiten, whiten_tokens",
                       rlft::Error);
  CHECK(parse_advantage_scale("whiten_tokens") == AdvantageScale::kWhitenTokens);
}

TEST_CASE("bad inputs are clear errors") {
  AdvantageOptions o;
  o.estimator = "ppo";
  CHECK_THROWS_WITH_AS(compute_advantages(rewards({{1, 0}}), o),
                       "estimator = ppo: known estimators are dr_grpo, grpo, reinforce_pp, rloo", rlft::Error);
  CHECK_THROWS_WITH_AS(compute_advantages(rewards({{1}}), {}),
                       "a group needs at least 2 completions to compare, got G = 1", rlft::Error);
}
