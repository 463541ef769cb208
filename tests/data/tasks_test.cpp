#include <doctest/doctest.h>

#include <set>

#include "core/config.h"
#include "data/dataset.h"
#include "data/tasks/arithmetic.h"
#include "data/tasks/countdown.h"
#include "tests/support/text_util.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

using namespace rlft;
using namespace rlft::data::tasks;

namespace {

std::vector<int64_t> ints(const nlohmann::json& j) {
  return j.get<std::vector<int64_t>>();
}

}  // namespace

TEST_CASE("the arithmetic evaluator follows precedence and refuses inexact division") {
  struct Row {
    std::string expr;
    std::optional<int64_t> value;
  };
  const Row rows[] = {
      {"2 + 3 * 4", 14},
      {"2 * 3 + 4", 10},
      {"10 - 4 - 3", 3},
      {"100 / 5 / 2", 10},
      {"7 - 2 * 3 + 1", 2},
      {"12 / 4 * 3", 9},
      {"5 / 2", std::nullopt},
      {"1 / 0", std::nullopt},
      {"999999999 * 999999999 * 999999999", std::nullopt},  // overflow
      {"3 +", std::nullopt},
      {"-4 + 1", -3},
  };
  for (const auto& r : rows) {
    CAPTURE(r.expr);
    CHECK(evaluate_arithmetic(r.expr) == r.value);
  }
}

TEST_CASE("generated arithmetic problems are distinct, within the knobs, and answered correctly") {
  ArithmeticOptions o;
  o.n_examples = 500;
  o.min_digits = 2;
  o.max_digits = 3;
  o.min_operands = 2;
  o.max_operands = 4;
  o.ops = {"+", "-", "*", "/"};
  o.allow_negative = false;
  const auto examples = generate_arithmetic(o, 11);
  REQUIRE(examples.size() == 500);
  std::set<std::string> prompts;
  bool saw_division = false;
  for (const auto& e : examples) {
    CAPTURE(e.prompt());
    CHECK(prompts.insert(e.prompt()).second);
    const std::string expr = e.meta["expression"];
    CHECK(e.prompt() == "What is " + expr + "?");
    CHECK(evaluate_arithmetic(expr) == std::stoll(e.reference));
    CHECK(std::stoll(e.reference) >= 0);
    CHECK(e.completion == e.reference);
    saw_division = saw_division || expr.find('/') != std::string::npos;
    // Operand count and digits.
    int operands = 1;
    for (char c : expr) operands += (c == '+' || c == '-' || c == '*' || c == '/');
    CHECK(operands >= 2);
    CHECK(operands <= 4);
  }
  CHECK(saw_division);
  // Same seed, same problems; another seed, others.
  CHECK(generate_arithmetic(o, 11)[7].prompt() == examples[7].prompt());
  CHECK(generate_arithmetic(o, 12)[7].prompt() != examples[7].prompt());
}

TEST_CASE("asking for more distinct problems than the knobs allow is a clear error") {
  ArithmeticOptions o;
  o.n_examples = 1000;  // 1-digit a+b has only 100 problems
  o.min_digits = o.max_digits = 1;
  o.ops = {"+"};
  CHECK(error_of([&] { generate_arithmetic(o, 0); }).find("widen") != std::string::npos);
}

TEST_CASE("every generated countdown problem is solvable: its solution evaluates to the target") {
  for (bool use_all : {false, true}) {
    CAPTURE(use_all);
    CountdownOptions o;
    o.n_examples = 400;
    o.min_numbers = 3;
    o.max_numbers = 5;
    o.use_all = use_all;
    const auto examples = generate_countdown(o, 5);
    REQUIRE(examples.size() == 400);
    std::set<std::string> prompts;
    for (const auto& e : examples) {
      const std::string solution = e.meta["solution"];
      const auto numbers = ints(e.meta["numbers"]);
      const int64_t target = e.meta["target"];
      CAPTURE(solution);
      CHECK(prompts.insert(e.prompt()).second);
      CHECK(numbers.size() >= 3);
      CHECK(numbers.size() <= 5);
      CHECK(target >= o.min_target);
      CHECK(target <= o.max_target);
      CHECK(e.reference == std::to_string(target));
      data::tasks::ExpressionLimits lim;
      lim.integer_division = true;  // the generator only divides evenly
      const auto v = evaluate_expression(solution, lim);
      REQUIRE(v.ok);
      CHECK(v.equals(target));
      CHECK(uses_numbers(v.numbers, numbers, use_all));
      CHECK(e.completion == "<answer>" + solution + "</answer>");
      if (!use_all) CHECK(std::find(numbers.begin(), numbers.end(), target) == numbers.end());
    }
  }
}

TEST_CASE("countdown prompts follow the template") {
  CountdownOptions o;
  o.n_examples = 1;
  o.prompt_template = "{numbers} -> {target} ({usage})";
  const auto e = generate_countdown(o, 1)[0];
  CHECK(e.prompt() == fmt::format("[{}] -> {} (at most once)", fmt::join(ints(e.meta["numbers"]), ", "),
                                  e.meta["target"].get<int64_t>()));
}

TEST_CASE("the expression evaluator: values, limits and refusals") {
  struct Row {
    std::string text;
    bool ok;
    int64_t num = 0, den = 1;
    std::string error = "";
  };
  const Row rows[] = {
      {"1 + 2 * 3", true, 7},
      {"(1 + 2) * 3", true, 9},
      {"8 / 3 * 3", true, 8},  // exact rationals: no float error
      {"7 / 2", true, 7, 2},
      {"10 - 2 - 3", true, 5},
      {"2 \xC3\x97 3 \xE2\x88\x92 1", true, 5},  // × and −
      {"6 \xC3\xB7 3", true, 2},                 // ÷
      {"((((4))))", true, 4},
      {"", false, 0, 1, "unexpected end"},
      {"1 +", false, 0, 1, "unexpected end"},
      {"-3 + 5", false, 0, 1, "unary minus"},
      {"2 * -3", false, 0, 1, "unary minus"},
      {"1.5 + 2", false, 0, 1, "whole numbers"},
      {"4 / 0", false, 0, 1, "division by zero"},
      {"4 / (2 - 2)", false, 0, 1, "division by zero"},
      {"2 ** 3", false, 0, 1, "unexpected '*'"},
      {"2 ^ 3", false, 0, 1, "unexpected '^'"},
      {"__import__('os')", false, 0, 1, "unexpected '_'"},
      {"(1 + 2", false, 0, 1, "missing ')'"},
      {"1 + 2)", false, 0, 1, "unexpected ')'"},
      {"1 2", false, 0, 1, "unexpected '2'"},
      {"9999999999 * 9999999999", false, 0, 1, "overflow"},
      {"1234567890123456789", false, 0, 1, "more than 18 digits"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.text);
    const auto v = evaluate_expression(r.text);
    CHECK(v.ok == r.ok);
    if (r.ok) {
      CHECK(v.numerator == r.num);
      CHECK(v.denominator == r.den);
    } else {
      CHECK(v.error.find(r.error) != std::string::npos);
    }
  }
}

TEST_CASE("the expression evaluator bounds length, depth and the count of numbers") {
  ExpressionLimits lim;
  lim.max_chars = 20;
  CHECK(evaluate_expression(std::string(21, '1'), lim).error.find("longer than 20") != std::string::npos);
  lim = {};
  lim.max_depth = 3;
  CHECK(evaluate_expression("(((1)))", lim).ok);
  CHECK(evaluate_expression("((((1))))", lim).error.find("nested deeper than 3") != std::string::npos);
  lim = {};
  lim.max_chars = 1 << 20;  // a huge nesting is refused by depth, not by the stack
  CHECK_FALSE(evaluate_expression(std::string(100000, '(') + "1" + std::string(100000, ')'), lim).ok);
  lim = {};
  lim.max_numbers = 2;
  CHECK(evaluate_expression("1 + 2 + 3", lim).error.find("more than 2 numbers") != std::string::npos);
  lim = {};
  lim.integer_division = true;
  CHECK(evaluate_expression("7 / 2 * 2", lim).error.find("does not come out even") != std::string::npos);
  CHECK(evaluate_expression("8 / 2 * 2", lim).equals(8));
}

TEST_CASE("numbers are used at most once, or exactly once with use_all") {
  CHECK(uses_numbers({3, 5}, {3, 5, 7}, false));
  CHECK_FALSE(uses_numbers({3, 5}, {3, 5, 7}, true));
  CHECK(uses_numbers({7, 3, 5}, {3, 5, 7}, true));
  CHECK_FALSE(uses_numbers({3, 3}, {3, 5, 7}, false));  // 3 given once, used twice
  CHECK(uses_numbers({3, 3}, {3, 3, 7}, false));        // given twice
  CHECK_FALSE(uses_numbers({4}, {3, 5, 7}, false));     // not given
  CHECK(uses_numbers({}, {3}, false));
}

TEST_CASE("task options are validated with the dotted key") {
  auto parse = [](const std::string& yaml) {
    auto v = ConfigView::parse(yaml, "t.yaml");
    data::load_dataset(v.section("data"), data::builtin_sources());
  };
  CHECK(error_of([&] {
          parse("data:\n  source: countdown\n  countdown: {min_numbers: 1}\n");
        }).find("data.countdown.min_numbers = 1: must be in [2, 6]") != std::string::npos);
  CHECK(error_of([&] {
          parse("data:\n  source: arithmetic\n  arithmetic: {ops: ['+', '%']}\n");
        }).find("data.arithmetic.ops") != std::string::npos);
  CHECK(error_of([&] {
          parse("data:\n  source: countdown\n  countdown: {prompt_template: '{nums}'}\n");
        }).find("unknown placeholder {nums}") != std::string::npos);
  CHECK(error_of([&] {
          parse("data:\n  source: arithmetic\n  arithmetic: {max_digits: 12}\n");
        }).find("data.arithmetic.max_digits = 12") != std::string::npos);
}

TEST_CASE("a generated task through load_dataset gives disjoint train and eval") {
  auto v =
      ConfigView::parse("data:\n  source: countdown\n  eval_size: 50\n  seed: 2\n  countdown: {n_examples: 300}\n");
  auto d = data::load_dataset(v.section("data"), data::builtin_sources());
  v.reject_unknown_keys();
  CHECK(d.train.size() == 250);
  CHECK(d.eval.size() == 50);
  std::set<std::string> train;
  for (const auto& e : d.train) train.insert(e.prompt());
  for (const auto& e : d.eval) CHECK_FALSE(train.count(e.prompt()));
  CHECK(d.description.find("countdown") == 0);
}
