#include <doctest/doctest.h>

#include "reward/rules/answer.h"
#include "reward/rules/math_answer.h"

using namespace rlft;
using namespace rlft::reward;

namespace {

/// "num/den" of an exact value, or "~x" for an approximate one, or "none".
std::string show(const std::optional<MathValue>& v) {
  if (!v) return "none";
  if (!v->exact) return fmt::format("~{}", static_cast<double>(v->approx));
  auto str = [](Int128 x) {
    const bool neg = x < 0;
    Int128 u = neg ? -x : x;
    std::string s;
    do s.insert(s.begin(), static_cast<char>('0' + u % 10)), u /= 10;
    while (u);
    return neg ? "-" + s : s;
  };
  return v->denominator == 1 ? str(v->numerator) : str(v->numerator) + "/" + str(v->denominator);
}

MathVerdict judge(const std::string& completion, const std::string& reference, MathAnswerOptions o = {}) {
  const auto ref = reference_value(reference, o);
  REQUIRE(ref.has_value());
  return judge_math_answer(completion, *ref, o);
}

constexpr auto kOk = MathVerdict::kCorrect;
constexpr auto kWrong = MathVerdict::kIncorrect;
constexpr auto kNone = MathVerdict::kNoAnswer;

}  // namespace

TEST_CASE("math values: the forms a grader must read, by value") {
  struct Row {
    std::string text, value;
  };
  const Row rows[] = {
      {"42", "42"},
      {"-7", "-7"},
      {"+3", "3"},
      {"\xE2\x88\x92"
       "5",
       "-5"},  // Unicode minus
      {"3.50", "7/2"},
      {"-.5", "-1/2"},
      {"0.000", "0"},
      {"1,234,567", "1234567"},
      {"1{,}234", "1234"},
      {"12,345.6", "61728/5"},
      {"3/4", "3/4"},
      {"6 / 8", "3/4"},
      {"-3/4", "-3/4"},
      {"\\frac{1}{2}", "1/2"},
      {"\\dfrac{3}{6}", "1/2"},
      {"\\tfrac{10}{4}", "5/2"},
      {"\\frac12", "1/2"},
      {"-\\frac{1}{3}", "-1/3"},
      {"\\frac{-2}{4}", "-1/2"},
      {"\\frac{1.5}{3}", "1/2"},
      {"$42$", "42"},
      {"\\(7\\)", "7"},
      {"\\$1,000", "1000"},
      {"$5.", "5"},
      {"50\\%", "50"},
      {"45^\\circ", "45"},
      {"x = 12", "12"},
      {"n=-3", "-3"},
      {"5 \\text{ dollars}", "5"},
      {"\\text{12}", "12"},
      {"12 cm", "12"},
      {"\\left( 3 \\right)", "none"},
      {"", "none"},
      {"   ", "none"},
      {"1, 2", "none"},
      {"1,2", "none"},  // not a thousands separator
      {"1234,567", "none"},
      {"x+1", "none"},
      {"5x", "none"},
      {"3 4", "none"},
      {"1/0", "none"},
      {"\\frac{1}{0}", "none"},
      {"\\frac{1}", "none"},
      {"abc", "none"},
      {"2 and 3", "none"},
      {"12345678901234567890", "12345678901234567890"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.text);
    CHECK(show(parse_math_value(r.text)) == r.value);
  }
}

TEST_CASE("very long numbers compare approximately") {
  const auto a = parse_math_value("1" + std::string(40, '0'));
  const auto b = parse_math_value("1" + std::string(40, '0') + ".0");
  REQUIRE(a);
  REQUIRE(b);
  CHECK_FALSE(a->exact);
  CHECK(math_equal(*a, *b, 1e-9));
}

TEST_CASE("extraction: boxed, answer tags, #### lines and numbers") {
  CHECK(extract_boxed("so \\boxed{\\frac{1}{2}} and \\fbox{3} and \\boxed 7 $") ==
        std::vector<std::string>{"\\frac{1}{2}", "3", "7"});
  CHECK(extract_boxed("\\boxed{a{b}c}") == std::vector<std::string>{"a{b}c"});
  CHECK(extract_boxed("\\boxed{unclosed").empty());
  CHECK(extract_boxed("\\boxedx{3}").empty());
  CHECK(extract_answer_tags("<answer>1</answer> x <answer> 2 </answer><answer>open") ==
        std::vector<std::string>{"1", " 2 "});
  CHECK(extract_hash_answers("work\n#### 42\n#### Step two\n##### -3 dollars") ==
        std::vector<std::string>{"42", "-3 dollars"});
  CHECK(find_numbers("Step 1: 3-2 = 1, then -4.5 and 1,000 and \\frac{1}{2}; 2023-01-05, x2") ==
        std::vector<std::string>{"1", "3", "2", "1", "-4.5", "1,000", "\\frac{1}{2}", "2023", "01", "05", "2"});
  CHECK(last_line("a\nb  \n\n  c d \n\n") == "c d");
}

TEST_CASE("math_answer: hand-worked completions, including the ones that hack a run") {
  struct Row {
    std::string completion, reference;
    MathVerdict verdict;
  };
  const Row rows[] = {
      {"The answer is \\boxed{42}.", "42", kOk},
      {"\\boxed{42.0}", "42", kOk},
      {"\\boxed{\\frac{84}{2}}", "42", kOk},
      {"\\boxed{0.5}", "\\frac{1}{2}", kOk},
      {"\\boxed{1/2}", "0.5", kOk},
      {"\\boxed{1,000}", "1000", kOk},
      {"\\boxed{-3}", "-3", kOk},
      {"\\boxed{3}", "-3", kWrong},
      {"\\boxed{0.333}", "1/3", kWrong},
      {"\\boxed{\\dfrac{2}{3}}", "2/3", kOk},
      {"so 6 * 7 = 42\n#### 42", "42", kOk},
      {"#### $1,234.50", "1234.5", kOk},
      {"Natalia sold 48 clips ... 48 + 24 = 72", "#### 72", kOk},  // GSM8K reference, last number
      {"<think>6*7</think><answer>42</answer>", "42", kOk},
      {"<answer>The answer is 42</answer>", "42", kOk},
      {"<answer>\\boxed{42}</answer>", "42", kOk},
      // Hedging: two different answers of the deciding strategy score nothing.
      {"\\boxed{41} or maybe \\boxed{42}", "42", kWrong},
      {"\\boxed{42} ... \\boxed{42.0}", "42", kOk},
      {"<answer>41</answer><answer>42</answer>", "42", kWrong},
      {"<answer>41 or 42</answer>", "42", kWrong},
      {"#### 41\n#### 42", "42", kWrong},
      {"#### 41 or 42", "42", kWrong},
      {"\\boxed{41 \\text{ or } 42}", "42", kWrong},
      {"\\boxed{4 2}", "42", kWrong},
      // Forms that are the right value.
      {"\\boxed{\\text{42}}.", "42", kOk},
      {"\\boxed{0042}", "42", kOk},
      {"\\boxed{42\\%}", "42", kOk},
      {"\\boxed{\\$42}", "42", kOk},
      {"\\boxed{x = 42}", "42", kOk},
      {"$\\boxed{-\\frac{3}{4}}$", "-0.75", kOk},
      {"\\boxed{\\frac{3}{-4}}", "-3/4", kOk},
      // The first strategy that finds an answer decides: no rescue by a later number.
      {"\\boxed{x+1} so 42", "42", kWrong},
      {"\\boxed{} 42", "42", kWrong},
      {"<answer></answer> 42", "42", kWrong},
      {"\\boxed{42} but the final is 41", "42", kOk},
      // Nothing to find.
      {"", "42", kNone},
      {"I don't know.", "42", kNone},
      {"#### Step one", "42", kNone},
      // last_number is the last resort, and it takes the last number.
      {"it is 42, not 41", "42", kWrong},
      {"41 is wrong; 42", "42", kOk},
      {"The result: -7.", "-7", kOk},
  };
  for (const auto& r : rows) {
    CAPTURE(r.completion);
    CAPTURE(r.reference);
    CHECK(judge(r.completion, r.reference) == r.verdict);
  }
}

TEST_CASE("math_answer strategies can be narrowed and hedging allowed") {
  MathAnswerOptions boxed_only;
  boxed_only.strategies = {"boxed"};
  CHECK(judge("the answer is 42", "42", boxed_only) == kNone);
  CHECK(judge("\\boxed{42}", "42", boxed_only) == kOk);
  MathAnswerOptions lenient;
  lenient.reject_multiple = false;
  CHECK(judge("\\boxed{41} or \\boxed{42}", "42", lenient) == kOk);  // the last one counts
}

TEST_CASE("math_answer scores a batch and checks references up front") {
  data::Example ex;
  ex.id = "e1";
  ex.reference = "#### 12";
  data::Example bad;
  bad.id = "e2";
  bad.reference = "twelve";
  MathAnswerOptions o;
  o.incorrect = -1;
  o.no_answer = -0.5;
  MathAnswerReward r("correct", o);
  ScoreBatch b;
  b.add(ex, "\\boxed{12}");
  b.add(ex, "\\boxed{13}");
  b.add(ex, "no idea");
  CHECK(r.score(b) == std::vector<double>{1, -1, -0.5});
  CHECK_NOTHROW(r.check_example(ex));
  CHECK_THROWS_WITH_AS(r.check_example(bad), "its reference answer is not a number: 'twelve'", Error);
  data::Example empty;
  CHECK_THROWS_WITH_AS(r.check_example(empty), doctest::Contains("no reference answer"), Error);
  ScoreBatch b2;
  b2.add(bad, "12");
  CHECK_THROWS_WITH_AS(r.score(b2), doctest::Contains("example 'e2' is not a number: 'twelve'"), Error);
}
