#include <doctest/doctest.h>

#include "core/config.h"
#include "reward/rules/exact_match.h"
#include "reward/rules/format.h"

using namespace rlft;
using namespace rlft::reward;

namespace {

bool pattern_matches(const std::string& pattern, const std::string& text, bool full = true, bool nonempty = true) {
  FormatOptions o;
  o.pattern = pattern;
  o.match = full ? "full" : "search";
  o.nonempty_groups = nonempty;
  return FormatReward("f", o).matches(text);
}

}  // namespace

TEST_CASE("think_answer: only both parts present, non-empty, once each and in order") {
  struct Row {
    std::string completion;
    bool ok;
  };
  const Row rows[] = {
      {"<think>reason</think><answer>42</answer>", true},
      {"  <think>\nreason\n</think>\n\n<answer> 42 </answer>\n", true},
      // The known hack: an empty or blank part must not score.
      {"<think>reason</think><answer></answer>", false},
      {"<think>reason</think><answer>  \n </answer>", false},
      {"<think></think><answer>42</answer>", false},
      {"<think> </think><answer>42</answer>", false},
      {"<think></think><answer></answer>", false},
      // Missing, repeated, nested or out-of-order tags.
      {"<answer>42</answer>", false},
      {"<think>reason</think>", false},
      {"<think>reason</think> 42", false},
      {"<answer>42</answer><think>reason</think>", false},
      {"<think>a</think><answer>1</answer><answer>2</answer>", false},
      {"<think>a</think><think>b</think><answer>1</answer>", false},
      {"<think>a<think>b</think><answer>1</answer>", false},
      {"<think>a</think><answer><answer>1</answer></answer>", false},
      {"<think>a</think><answer>1", false},
      {"<think>a<answer>1</answer></think>", false},
      {"<THINK>a</THINK><ANSWER>1</ANSWER>", false},
      // Text outside the blocks.
      {"Sure! <think>a</think><answer>1</answer>", false},
      {"<think>a</think> between <answer>1</answer>", false},
      {"<think>a</think><answer>1</answer> and more", false},
      {"", false},
  };
  for (const auto& r : rows) {
    CAPTURE(r.completion);
    CHECK(has_think_answer_format(r.completion, false, false) == r.ok);
  }
}

TEST_CASE("think_answer with the opening tag in the prompt, and with trailing text allowed") {
  CHECK(has_think_answer_format("reason</think><answer>42</answer>", true, false));
  CHECK_FALSE(has_think_answer_format("<think>reason</think><answer>42</answer>", true, false));
  CHECK_FALSE(has_think_answer_format("</think><answer>42</answer>", true, false));
  CHECK(has_think_answer_format("<think>a</think><answer>1</answer><|endoftext|>", false, true));
  CHECK_FALSE(has_think_answer_format("<think>a</think><answer> </answer> text", false, true));
}

TEST_CASE("format patterns: full or search, non-empty groups") {
  CHECK(pattern_matches("<answer>(.*)</answer>", "<answer>42</answer>"));
  CHECK_FALSE(pattern_matches("<answer>(.*)</answer>", "<answer> </answer>"));  // blank group
  CHECK(pattern_matches("<answer>(.*)</answer>", "<answer> </answer>", true, false));
  CHECK_FALSE(pattern_matches("<answer>(.*)</answer>", "x <answer>42</answer>"));  // full match
  CHECK(pattern_matches("<answer>(.*)</answer>", "x <answer>42</answer>", false));
  CHECK(pattern_matches("^A(.*)B$", "A\nline\nB"));  // dotall by default
  CHECK(pattern_matches("a(x)?b", "ab"));            // a group that took no part is fine
  CHECK(pattern_matches("caf\xC3\xA9", "caf\xC3\xA9"));
  CHECK_FALSE(pattern_matches("abc", "ab\xFF"));  // invalid UTF-8 in a completion: no match, no error
  CHECK(pattern_matches("ab", "ab\xFF", false));
  FormatOptions ci;
  ci.pattern = "<ANSWER>.+</ANSWER>";
  ci.case_insensitive = true;
  CHECK(FormatReward("f", ci).matches("<answer>1</answer>"));
}

TEST_CASE("a catastrophic pattern gives up instead of stalling") {
  FormatOptions o;
  o.pattern = "(a+)+$";
  o.match = "search";
  FormatReward r("f", o);
  CHECK_FALSE(r.matches(std::string(5000, 'a') + "!"));
}

TEST_CASE("format scores and mismatch scores are configurable") {
  auto view = ConfigView::parse("f: {template: think_answer, score: 0.5, mismatch: -0.5}\n", "r.yaml");
  auto fn = make_format_reward("f", view.section("f"), {});
  data::Example ex;
  ScoreBatch b;
  b.add(ex, "<think>a</think><answer>b</answer>");
  b.add(ex, "<answer>b</answer>");
  CHECK(fn->score(b) == std::vector<double>{0.5, -0.5});
}

TEST_CASE("exact_match normalisation, table of cases") {
  struct Row {
    std::string completion, reference;
    ExactMatchOptions options;
    bool match;
  };
  ExactMatchOptions plain;
  ExactMatchOptions strict;
  strict.case_sensitive = true;
  strict.collapse_whitespace = false;
  ExactMatchOptions squad;
  squad.strip_punctuation = true;
  squad.remove_articles = true;
  ExactMatchOptions tag;
  tag.extract = "answer_tag";
  ExactMatchOptions boxed;
  boxed.extract = "boxed";
  ExactMatchOptions line;
  line.extract = "last_line";
  const Row rows[] = {
      {"Paris", "Paris", plain, true},
      {"  paris \n", "Paris", plain, true},
      {"New   York", "new york", plain, true},
      {"New York", "New  York", strict, false},
      {"paris", "Paris", strict, false},
      {"Paris.", "Paris", plain, false},
      {"The Eiffel Tower!", "eiffel tower", squad, true},
      {"a cat", "the cat", squad, true},
      {"<think>x</think><answer> Paris </answer>", "paris", tag, true},
      {"Paris", "paris", tag, false},  // no tag: no answer
      {"<answer></answer>", "", tag, false},
      {"", "", plain, false},  // empty never matches, even an empty reference
      {"   ", " ", plain, false},
      {"...", "!!!", squad, false},  // empty after normalisation
      {"so \\boxed{Paris}", "paris", boxed, true},
      {"work\nParis\n", "paris", line, true},
      {"\xC3\x89T\xC3\x89", "\xC3\xA9t\xC3\xA9", plain, false},  // case folding is ASCII only
  };
  for (const auto& r : rows) {
    CAPTURE(r.completion);
    CAPTURE(r.reference);
    CHECK(exact_match(r.completion, r.reference, r.options) == r.match);
  }
}

TEST_CASE("exact_match needs a reference that is not empty") {
  ExactMatchReward r("em", {});
  data::Example ex;
  ex.id = "x";
  CHECK_THROWS_WITH_AS(r.check_example(ex), doctest::Contains("reference answer is empty"), Error);
  ex.reference = "yes";
  CHECK_NOTHROW(r.check_example(ex));
}
