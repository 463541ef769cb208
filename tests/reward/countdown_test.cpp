#include <doctest/doctest.h>

#include "data/tasks/countdown.h"
#include "reward/rules/countdown.h"

using namespace rlft;
using namespace rlft::reward;

namespace {

constexpr auto kCountdownOk = CountdownVerdict::kCorrect;
constexpr auto kCountdownWrong = CountdownVerdict::kWrongValue;
constexpr auto kCountdownInvalid = CountdownVerdict::kInvalid;

data::Example task(std::vector<int64_t> numbers, int64_t target) {
  data::Example ex;
  ex.id = "cd";
  ex.meta = {{"numbers", numbers}, {"target", target}};
  return ex;
}

}  // namespace

TEST_CASE("countdown: hand-worked equations for numbers [3, 5, 7, 2] and target 24") {
  const std::vector<int64_t> n = {3, 5, 7, 2};
  struct Row {
    std::string completion;
    CountdownVerdict verdict;
  };
  const Row rows[] = {
      {"<answer>(7 - 3) * (5 + 2) - 4</answer>", kCountdownInvalid},  // 4 is not given
      {"<answer>3 * (5 + 7 - 2) - 6</answer>", kCountdownInvalid},    // 6 is not given
      {"<answer>(5 + 7) * 2</answer>", kCountdownOk},                 // a subset is fine
      {"<answer>(7 + 5) * 2 = 24</answer>", kCountdownOk},            // "= target" allowed
      {"<answer>(7 + 5) * 2 = 25</answer>", kCountdownOk},            // the claim is ignored: the value counts
      {"<answer>7 + 5 = 24</answer>", kCountdownWrong},
      {"<answer>= 24</answer>", kCountdownInvalid},
      {"<answer>24</answer>", kCountdownInvalid},  // 24 is not given
      {"<answer>3 * 7 + 5 - 2</answer>", kCountdownOk},
      {"<answer>3 * 7 + 3</answer>", kCountdownInvalid},                              // 3 used twice
      {"<answer>(3 + 5) * (7 - 2)</answer>", kCountdownWrong},                        // valid, 40
      {"<answer>2 * (3 \xC3\x97 5 \xE2\x88\x92 7) + 8</answer>", kCountdownInvalid},  // 8 not given
      {"<answer>(5 \xC3\x97 3) + 7 + 2</answer>", kCountdownOk},                      // × accepted
      {"<answer>7 * 3 + 5 - 2 </answer> done", kCountdownOk},
      {"<think>maybe</think><answer>5 * 5 - 1</answer>", kCountdownInvalid},  // 5 twice, 1 not given
      {"<answer></answer>", kCountdownInvalid},
      {"<answer>   </answer>", kCountdownInvalid},
      {"(5 + 7) * 2", kCountdownInvalid},                                 // no answer tag
      {"<answer>(5+7)*2</answer><answer>1</answer>", kCountdownInvalid},  // two answers: hedging
      {"<answer>eval('(5+7)*2')</answer>", kCountdownInvalid},
      {"<answer>(5 + 7) * 2; import os</answer>", kCountdownInvalid},
      {"<answer>-2 + (5 + 7) * 2 + 2</answer>", kCountdownInvalid},  // unary minus
      {"<answer>(5 + 7) * 2.0</answer>", kCountdownInvalid},         // decimals
      {"<answer>7 / 2 * (5 + 3)</answer>", kCountdownWrong},         // 3.5 * 8 = 28: valid, not 24
      {"<answer>(7 - 5) ^ 3 * 3</answer>", kCountdownInvalid},
  };
  for (const auto& r : rows) {
    CAPTURE(r.completion);
    std::string why;
    const auto v = judge_countdown(r.completion, n, 24, false, {}, &why);
    CAPTURE(why);
    CHECK(v == r.verdict);
  }
}

TEST_CASE("countdown: exact rational arithmetic, and the game's integer division when asked") {
  // 8 / 3 * 3 = 8 exactly; a float evaluator would give 7.999999…
  CHECK(judge_countdown("<answer>8 / 3 * 3</answer>", {8, 3, 3}, 8, false, {}) == kCountdownOk);
  CountdownRewardOptions game;
  game.integer_division = true;
  CHECK(judge_countdown("<answer>8 / 3 * 3</answer>", {8, 3, 3}, 8, false, game) == kCountdownInvalid);
  CHECK(judge_countdown("<answer>(8 + 1) / 3</answer>", {8, 1, 3}, 3, false, game) == kCountdownOk);
  // A fraction never equals an integer target.
  CHECK(judge_countdown("<answer>7 / 2</answer>", {7, 2}, 3, false, {}) == kCountdownWrong);
  CHECK(judge_countdown("<answer>6 / (3 - 3)</answer>", {6, 3, 3}, 2, false, {}) == kCountdownInvalid);
}

TEST_CASE("countdown: use_all from the options or from the example") {
  CountdownRewardOptions all;
  all.use_all = true;
  CHECK(judge_countdown("<answer>(5 + 7) * 2</answer>", {3, 5, 7, 2}, 24, false, all) == kCountdownInvalid);
  CHECK(judge_countdown("<answer>(5 + 7) * 2 * 3 / 3</answer>", {3, 5, 7, 2}, 24, false, all) ==
        kCountdownInvalid);  // 3 twice
  CHECK(judge_countdown("<answer>(5 + 7) * 2</answer>", {3, 5, 7, 2}, 24, /*use_all=*/true, {}) == kCountdownInvalid);
  CHECK(judge_countdown("<answer>3 * 7 + 5 - 2</answer>", {3, 5, 7, 2}, 24, true, {}) == kCountdownOk);
}

TEST_CASE("countdown: extraction modes and bounds") {
  CountdownRewardOptions line;
  line.extract = "last_line";
  CHECK(judge_countdown("thinking...\n(5 + 7) * 2", {5, 7, 2}, 24, false, line) == kCountdownOk);
  CountdownRewardOptions full;
  full.extract = "full";
  CHECK(judge_countdown(" (5 + 7) * 2 ", {5, 7, 2}, 24, false, full) == kCountdownOk);
  CHECK(judge_countdown("The answer is (5 + 7) * 2", {5, 7, 2}, 24, false, full) == kCountdownInvalid);
  CountdownRewardOptions small;
  small.max_chars = 10;
  CHECK(judge_countdown("<answer>(5 + 7) * 2</answer>", {5, 7, 2}, 24, false, small) == kCountdownInvalid);
  CountdownRewardOptions shallow;
  shallow.max_depth = 2;
  CHECK(judge_countdown("<answer>(((5 + 7))) * 2</answer>", {5, 7, 2}, 24, false, shallow) == kCountdownInvalid);
  CHECK(judge_countdown("<answer>" + std::string(5000, '(') + "</answer>", {5}, 5, false, {}) == kCountdownInvalid);
  CountdownRewardOptions no_equals;
  no_equals.allow_equals = false;
  CHECK(judge_countdown("<answer>(5 + 7) * 2 = 24</answer>", {5, 7, 2}, 24, false, no_equals) == kCountdownInvalid);
}

TEST_CASE("countdown reward: scores, and examples without numbers are refused up front") {
  CountdownRewardOptions o;
  o.wrong_value = 0.1;
  o.invalid = -0.5;
  CountdownReward r("cd", o);
  const auto ex = task({3, 5, 7, 2}, 24);
  ScoreBatch b;
  b.add(ex, "<answer>(5 + 7) * 2</answer>");
  b.add(ex, "<answer>5 + 7</answer>");
  b.add(ex, "<answer>4 * 6</answer>");
  CHECK(r.score(b) == std::vector<double>{1.0, 0.1, -0.5});

  data::Example none;
  none.id = "x";
  CHECK_THROWS_WITH_AS(r.check_example(none), doctest::Contains("no meta.numbers and meta.target"), Error);
  data::Example bad = task({3}, 3);
  bad.meta["numbers"] = {"3"};
  CHECK_THROWS_WITH_AS(r.check_example(bad), doctest::Contains("meta.numbers must hold non-negative integers"), Error);
  bad = task({3}, 3);
  bad.meta["target"] = 2.5;
  CHECK_THROWS_WITH_AS(r.check_example(bad), doctest::Contains("meta.target must be an integer"), Error);
  ScoreBatch b2;
  b2.add(none, "<answer>1</answer>");
  CHECK_THROWS_WITH_AS(r.score(b2), doctest::Contains("reward 'cd' cannot score example 'x'"), Error);
}

TEST_CASE("every generated countdown problem's own solution scores full marks") {
  data::tasks::CountdownOptions o;
  o.n_examples = 300;
  o.max_numbers = 6;
  CountdownRewardOptions game;
  game.integer_division = true;
  CountdownReward r("cd", game);
  const auto examples = data::tasks::generate_countdown(o, 9);
  ScoreBatch b;
  for (const auto& e : examples) b.add(e, e.completion);
  for (double s : r.score(b)) CHECK(s == 1.0);
}
