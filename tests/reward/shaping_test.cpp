// length, repetition and blocklist: the shaping and filtering rewards.
#include <doctest/doctest.h>

#include "core/config.h"
#include "reward/rules/blocklist.h"
#include "reward/rules/length.h"
#include "reward/rules/repetition.h"
#include "tests/support/temp_dir.h"

using namespace rlft;
using namespace rlft::reward;

TEST_CASE("DAPO soft overlong penalty, L_max = 20, L_cache = 4") {
  // R = 0 for L <= 16; (16 - L) / 4 for 16 < L <= 20; -1 beyond.
  const std::pair<int64_t, double> rows[] = {{0, 0.0},    {10, 0.0},  {16, 0.0},  {17, -0.25}, {18, -0.5},
                                             {19, -0.75}, {20, -1.0}, {21, -1.0}, {1000, -1.0}};
  for (const auto& [length, expect] : rows) {
    CAPTURE(length);
    CHECK(soft_overlong_penalty(length, 20, 4) == doctest::Approx(expect));
  }
  // L_cache = L_max: the band starts at zero length.
  CHECK(soft_overlong_penalty(5, 10, 10) == doctest::Approx(-0.5));
}

TEST_CASE("target-length shaping: tolerance, scale and direction") {
  LengthOptions o;
  o.mode = "target";
  o.target_length = 100;
  o.tolerance = 10;
  o.scale = 40;
  const std::pair<int64_t, double> both[] = {{100, 0.0},  {110, 0.0},  {90, 0.0},   {120, -0.25},
                                             {80, -0.25}, {150, -1.0}, {200, -1.0}, {0, -1.0}};
  for (const auto& [length, expect] : both) {
    CAPTURE(length);
    CHECK(target_length_penalty(length, o) == doctest::Approx(expect));
  }
  o.direction = "longer";
  CHECK(target_length_penalty(0, o) == 0.0);
  CHECK(target_length_penalty(130, o) == doctest::Approx(-0.5));
  o.direction = "shorter";
  CHECK(target_length_penalty(500, o) == 0.0);
  CHECK(target_length_penalty(70, o) == doctest::Approx(-0.5));
}

TEST_CASE("the length reward counts tokens from the batch or characters from the text") {
  data::Example ex;
  LengthOptions o;
  o.max_length = 20;
  o.cache_length = 4;
  LengthReward tokens("len", o);
  ScoreBatch b;
  b.add(ex, "whatever", 18);
  b.add(ex, "", 25);
  CHECK(tokens.score(b) == std::vector<double>{-0.5, -1.0});
  ScoreBatch no_counts;
  no_counts.add(ex, "text");
  CHECK_THROWS_WITH_AS(tokens.score(no_counts), doctest::Contains("has no completion token counts"), Error);
  o.unit = "chars";
  LengthReward chars("len", o);
  ScoreBatch c;
  c.add(ex, std::string(17, 'x'));
  c.add(ex, "\xC3\xA9\xC3\xA9");  // two code points, four bytes
  CHECK(chars.score(c) == std::vector<double>{-0.25, 0.0});
  CHECK(count_chars("\xC3\xA9t\xE2\x82\xAC") == 3);
}

TEST_CASE("n-gram repetition: hand-worked fractions") {
  RepetitionOptions words;
  words.n = 2;
  struct Row {
    std::string text;
    double fraction;
  };
  const Row rows[] = {
      {"", 0.0},
      {"one", 0.0},                          // no bigram
      {"a b", 0.0},                          // 1 bigram, distinct
      {"a b a b", 1.0 - 2.0 / 3.0},          // ab ba ab
      {"a a a a a", 1.0 - 1.0 / 4.0},        // aa ×4
      {"The cat the CAT", 1.0 - 2.0 / 3.0},  // case-blind: "the cat" twice
      {"x y z w", 0.0},
  };
  for (const auto& r : rows) {
    CAPTURE(r.text);
    CHECK(repeated_fraction(split_units(r.text, words), 2) == doctest::Approx(r.fraction));
  }
  RepetitionOptions chars;
  chars.unit = "chars";
  CHECK(split_units("a\xC3\xA9"
                    "b",
                    chars) == std::vector<std::string>{"a", "\xC3\xA9", "b"});
  CHECK(repeated_fraction(split_units("ababab", chars), 3) == doctest::Approx(1.0 - 2.0 / 4.0));
  CHECK(repeated_fraction(std::vector<int64_t>{1, 2, 1, 2, 1, 2}, 2) == doctest::Approx(1.0 - 2.0 / 5.0));
}

TEST_CASE("the repetition reward scales the fraction by the penalty; token n-grams need token ids") {
  data::Example ex;
  RepetitionOptions o;
  o.n = 1;
  o.penalty = -2.0;
  RepetitionReward r("rep", o);
  ScoreBatch b;
  b.add(ex, "go go go go");  // unigrams: 1 distinct of 4
  b.add(ex, "");
  CHECK(r.score(b) == std::vector<double>{-1.5, 0.0});
  o.unit = "tokens";
  RepetitionReward t("rep", o);
  CHECK_THROWS_WITH_AS(t.score(b), doctest::Contains("no completion token ids"), Error);
  b.completion_token_ids = {{5, 5, 6, 6}, {}};
  CHECK(t.score(b) == std::vector<double>{-1.0, 0.0});
}

TEST_CASE("blocklist phrases: whole words, case-blind, Unicode-aware") {
  BlocklistOptions o;
  o.words = {"bomb", "bad phrase", "c++", "\xC3\xA9t\xC3\xA9"};
  Blocklist list(o);
  struct Row {
    std::string text;
    bool hit;
  };
  const Row rows[] = {
      {"how to build a bomb", true},
      {"BOMB!", true},
      {"a bombastic speech", false},
      {"the bad phrase here", true},
      {"bad  phrase", false},
      {"I like C++ a lot", true},
      {"c+++", true},
      {"\xC3\x89T\xC3\x89 hot", true},
      {"pr\xC3\xA9t\xC3\xA9s", false},
      {"nothing wrong", false},
      {"", false},
  };
  for (const auto& r : rows) {
    CAPTURE(r.text);
    CHECK(list.matches(r.text) == r.hit);
  }
  o.whole_words = false;
  CHECK(Blocklist(o).matches("a bombastic speech"));
  o.case_sensitive = true;
  CHECK_FALSE(Blocklist(o).matches("BOMB"));
}

TEST_CASE("blocklist patterns and phrase files") {
  test::TempDir dir;
  BlocklistOptions o;
  o.file = dir.write("block.txt", "# a comment\n\n  secret key  \nPASSWORD\n");
  o.patterns = {"\\b\\d{3}-\\d{2}-\\d{4}\\b"};
  Blocklist list(o);
  CHECK(list.matches("my secret key is"));
  CHECK(list.matches("password: x"));
  CHECK(list.matches("ssn 123-45-6789"));
  CHECK_FALSE(list.matches("# a comment"));
  CHECK_FALSE(list.matches("123-456-789"));
}

TEST_CASE("a long phrase list compiles and matches its last phrase") {
  BlocklistOptions o;
  for (int i = 0; i < 20000; ++i) o.words.push_back("phrase" + std::to_string(i) + " x");
  Blocklist list(o);
  CHECK(list.matches("say phrase19999 x now"));
  CHECK(list.matches("PHRASE0 X"));
  CHECK_FALSE(list.matches("phrase20000 x"));
}

TEST_CASE("the blocklist penalises completions and drops prompts") {
  BlocklistOptions o;
  o.words = {"forbidden"};
  o.penalty = -3;
  o.drop_prompts = true;
  BlocklistReward r("filter", o);
  data::Example clean, dirty, dirty_system;
  clean.messages = {{"user", "hello"}};
  dirty.messages = {{"user", "say the Forbidden word"}};
  dirty_system.messages = {{"system", "forbidden"}, {"user", "hi"}};
  CHECK(r.keep_prompt(clean));
  CHECK_FALSE(r.keep_prompt(dirty));
  CHECK_FALSE(r.keep_prompt(dirty_system));
  ScoreBatch b;
  b.add(clean, "fine");
  b.add(clean, "FORBIDDEN.");
  CHECK(r.score(b) == std::vector<double>{0.0, -3.0});
  o.check_completions = false;
  CHECK(BlocklistReward("filter", o).score(b) == std::vector<double>{0.0, 0.0});
  o.drop_prompts = false;
  o.check_completions = true;
  CHECK(BlocklistReward("filter", o).keep_prompt(dirty));
}
