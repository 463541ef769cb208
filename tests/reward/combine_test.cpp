// The weighted combination, the registry and the `rewards:` config, including every config
// example in docs/rewards.md.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/config.h"
#include "data/dataset.h"
#include "data/dataset_jsonl.h"
#include "reward/combine.h"
#include "reward/rules/format.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_util.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

using namespace rlft;
using namespace rlft::reward;

namespace {

/// A reward that returns fixed scores, to check the arithmetic of the combination.
class Fixed : public RewardFn {
 public:
  Fixed(std::string name, std::vector<double> scores) : RewardFn(std::move(name)), scores_(std::move(scores)) {}
  std::vector<double> score(const ScoreBatch&) override { return scores_; }

 private:
  std::vector<double> scores_;
};

RewardSet from_yaml(const std::string& yaml, const std::string& file = "r.yaml") {
  auto view = ConfigView::parse(yaml, file);
  return RewardSet::from_config(view.section("rewards"), builtin_rewards());
}

}  // namespace

TEST_CASE("the total is the weighted sum and every part is kept unweighted") {
  RewardSet set;
  set.add(std::make_unique<Fixed>("a", std::vector<double>{1, 0, 1}), 1.0);
  set.add(std::make_unique<Fixed>("b", std::vector<double>{0.5, 1, -1}), 0.2);
  set.add(std::make_unique<Fixed>("watch", std::vector<double>{7, 7, 7}), 0.0);
  data::Example ex;
  ScoreBatch batch;
  for (int i = 0; i < 3; ++i) batch.add(ex, "c");
  const auto s = set.score(batch);
  CHECK(s.total[0] == doctest::Approx(1.1));
  CHECK(s.total[1] == doctest::Approx(0.2));
  CHECK(s.total[2] == doctest::Approx(0.8));
  CHECK(s.names == std::vector<std::string>{"a", "b", "watch"});
  CHECK(s.parts_of(2) == std::vector<std::pair<std::string, double>>{{"a", 1}, {"b", -1}, {"watch", 7}});
  const auto summary = s.summary();
  REQUIRE(summary.size() == 5);
  CHECK(summary[0].first == "reward_mean");
  CHECK(summary[0].second == doctest::Approx(0.7));
  CHECK(summary[1].first == "reward_std");
  CHECK(summary[1].second == doctest::Approx(std::sqrt((0.16 + 0.25 + 0.01) / 3)));
  CHECK(summary[3].first == "reward/b");
  CHECK(summary[3].second == doctest::Approx(0.5 / 3));
  CHECK(summary[4].second == 7);
  CHECK(set.describe() == "1*a + 0.2*b + 0*watch");
}

TEST_CASE("a part that misbehaves is named") {
  data::Example ex;
  ex.id = "ex7";
  ScoreBatch batch;
  batch.add(ex, "c");
  batch.add(ex, "c");
  RewardSet short_set;
  short_set.add(std::make_unique<Fixed>("short", std::vector<double>{1}), 1);
  CHECK(error_of([&] { short_set.score(batch); }) == "reward 'short' returned 1 scores for 2 completions");
  RewardSet nan_set;
  nan_set.add(std::make_unique<Fixed>("rm", std::vector<double>{0, std::nan("")}), 1);
  CHECK(error_of([&] {
          nan_set.score(batch);
        }).find("reward 'rm' gave a non-finite score (nan) to completion 1 (example 'ex7')") == 0);
  RewardSet dup;
  dup.add(std::make_unique<Fixed>("x", std::vector<double>{}), 1);
  CHECK(error_of([&] { dup.add(std::make_unique<Fixed>("x", std::vector<double>{}), 1); }) ==
        "reward 'x' is configured twice");
  ScoreBatch bad = batch;
  bad.completion_tokens = {1};
  CHECK(error_of([&] { short_set.score(bad); }).find("1 token counts for 2 completions") != std::string::npos);
}

TEST_CASE("rewards from YAML: names, types, weights, parts in order") {
  auto set = from_yaml(
      "rewards:\n"
      "  correct: {type: math_answer, weight: 1.0}\n"
      "  format: {template: think_answer, weight: 0.25}\n"
      "  repetition: {n: 2, weight: 0.5}\n");
  CHECK(set.names() == std::vector<std::string>{"correct", "format", "repetition"});
  CHECK(set.describe() == "1*correct(math_answer) + 0.25*format + 0.5*repetition");
  data::Example ex;
  ex.reference = "4";
  ScoreBatch b;
  b.add(ex, "<think>2+2</think><answer>4</answer>");
  b.add(ex, "5 5 5 5");
  const auto s = set.score(b);
  CHECK(s.parts[0] == std::vector<double>{1, 0});
  CHECK(s.parts[1] == std::vector<double>{1, 0});
  CHECK(s.parts[2][0] == 0.0);
  CHECK(s.parts[2][1] == doctest::Approx(-2.0 / 3));  // bigrams "5 5" ×3: 1 distinct of 3
  CHECK(s.total[0] == doctest::Approx(1.25));
}

TEST_CASE("reward config errors name the file, the line and the dotted key") {
  struct Row {
    std::string yaml, error;
  };
  const Row rows[] = {
      {"rewards:\n  correct: {type: math_anser}\n",
       "r.yaml:2:19: rewards.correct.type = math_anser: unknown reward 'math_anser': known rewards are blocklist, "
       "countdown, exact_match, format, length, math_answer, repetition"},
      {"rewards:\n  accuracy: {weight: 1}\n", "rewards.accuracy = {…}: unknown reward 'accuracy'"},
      {"rewards:\n  fmt: {type: format, pattern: \"<answer>(.*</answer>\"}\n",
       "r.yaml:2:32: rewards.fmt.pattern = <answer>(.*</answer>: the regular expression does not compile: missing "
       "closing parenthesis at offset 20"},
      {"rewards:\n  block: {type: blocklist, patterns: [ok, \"[z-a]\"]}\n",
       "rewards.block.patterns = […]: patterns[1] /[z-a]/: the regular expression does not compile: range out of "
       "order"},
      {"rewards:\n  block: {type: blocklist, patterns: [\"x*\"]}\n", "matches the empty text"},
      {"rewards:\n  block: {type: blocklist, words: [\" \"]}\n", "words[0] is empty"},
      {"rewards:\n  block: {type: blocklist}\n", "r.yaml:2:10: rewards.block: set words, patterns or file"},
      {"rewards:\n  block: {type: blocklist, file: /nonexistent/list.txt}\n",
       "rewards.block.file = /nonexistent/list.txt: cannot read the blocklist file"},
      {"rewards:\n  fmt: {type: format}\n", "r.yaml:2:8: rewards.fmt: set `template: think_answer` or a `pattern`"},
      {"rewards:\n  fmt: {type: format, template: think_answer, pattern: x}\n",
       "rewards.fmt.pattern = x: set `template` or `pattern`, not both"},
      {"rewards:\n  fmt: {type: format, template: xml}\n", "rewards.fmt.template = xml: must be think_answer"},
      {"rewards:\n  correct: {type: math_answer, strategies: [boxed, guess]}\n", "'guess' is not a strategy"},
      {"rewards:\n  correct: {type: math_answer, correct: 0, incorrect: 1}\n", "must be greater than `incorrect`"},
      {"rewards:\n  correct: {type: math_answer, tolerence: 0.1}\n",
       "rewards.correct.tolerence = 0.1: unknown key (did you mean 'tolerance'?)"},
      {"rewards:\n  correct: {type: math_answer, weight: .nan}\n",
       "rewards.correct.weight = .nan: must be a finite number"},
      {"rewards:\n  correct: {type: math_answer, weight: high}\n", "rewards.correct.weight = high: expected a number"},
      {"rewards:\n  len: {type: length, cache_length: 5000}\n",
       "rewards.len.cache_length = 5000: must be in [1, max_length]"},
      {"rewards:\n  len: {type: length, mode: target, max_length: 5}\n", "rewards.len.max_length = 5: unknown key"},
      {"rewards:\n  len: {type: length, unit: bytes}\n", "must be tokens or chars"},
      {"rewards:\n  rep: {type: repetition, penalty: 1}\n", "it is a penalty"},
      {"rewards:\n  rep: {type: repetition, n: 0}\n", "rewards.rep.n = 0: must be in [1, 64]"},
      {"rewards:\n  em: {type: exact_match, extract: json}\n", "must be none, answer_tag, boxed or last_line"},
      {"rewards:\n  cd: {type: countdown, max_depth: 0}\n", "rewards.cd.max_depth = 0: must be in [1, 64]"},
      {"rewards: {}\n", "r.yaml:1:10: rewards: no reward configured"},
      {"other: 1\n", "r.yaml: rewards: no reward configured"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.yaml);
    const std::string err = error_of([&] { from_yaml(r.yaml); });
    CAPTURE(err);
    CHECK(err.find(r.error) != std::string::npos);
  }
}

TEST_CASE("the registry lists its names and refuses duplicates") {
  auto reg = builtin_rewards();
  CHECK(reg.names() == std::vector<std::string>{"blocklist", "countdown", "exact_match", "format", "length",
                                                "math_answer", "repetition", "reward_model"});
  CHECK(error_of([&] { reg.get("rm"); }).find("unknown reward 'rm': known rewards are blocklist") == 0);
  CHECK_THROWS_AS(register_builtin_rewards(reg), Error);
}

TEST_CASE("a learned model plugs in like any rule: registered, configured, scoring a batch") {
  // A stand-in for the preference reward model: its own options, scores the batch at once.
  class LengthModel : public RewardFn {
   public:
    LengthModel(std::string name, int64_t batch_size) : RewardFn(std::move(name)), batch_size_(batch_size) {}
    std::vector<double> score(const ScoreBatch& batch) override {
      std::vector<double> out;
      for (std::size_t start = 0; start < batch.size(); start += batch_size_)  // micro-batches
        for (std::size_t i = start; i < std::min(batch.size(), start + batch_size_); ++i)
          out.push_back(static_cast<double>(batch.completions[i].size()));
      ++calls;
      return out;
    }
    int calls = 0;

   private:
    std::size_t batch_size_;
  };
  auto reg = builtin_rewards();
  RewardContext seen;
  reg.add("length_model", [&](const std::string& name, const ConfigView& c, const RewardContext& ctx) {
    seen = ctx;
    return std::make_unique<LengthModel>(name, c.get<int64_t>("batch_size", 8));
  });
  auto view = ConfigView::parse("rewards:\n  rm: {type: length_model, batch_size: 2, weight: 0.5}\n");
  RewardContext ctx;
  ctx.device = "cuda:1";
  auto set = RewardSet::from_config(view.section("rewards"), reg, ctx);
  CHECK(seen.device == "cuda:1");
  data::Example ex;
  ScoreBatch b;
  for (const char* c : {"a", "bb", "ccc", "dddd", "eeeee"}) b.add(ex, c);
  const auto s = set.score(b);
  CHECK(s.parts[0] == std::vector<double>{1, 2, 3, 4, 5});
  CHECK(s.total[4] == 2.5);
}

TEST_CASE("examples are checked and filtered through the set") {
  auto set = from_yaml(
      "rewards:\n"
      "  correct: {type: math_answer}\n"
      "  filter: {type: blocklist, words: [secret], drop_prompts: true}\n");
  std::vector<data::Example> examples(3);
  examples[0].id = "a";
  examples[0].reference = "1";
  examples[0].messages = {{"user", "what is 1?"}};
  examples[1].id = "b";
  examples[1].reference = "2";
  examples[1].messages = {{"user", "tell me the secret"}};
  examples[2].id = "c";
  examples[2].reference = "three";
  examples[2].messages = {{"user", "3?"}};
  CHECK(error_of([&] { set.check_examples(examples); }) ==
        "reward 'correct' cannot score example 'c': its reference answer is not a number: 'three'");
  CHECK(set.filter_prompts(examples) == 1);
  CHECK(examples.size() == 2);
  CHECK(examples[1].id == "c");
}

TEST_CASE("every YAML example in docs/rewards.md and configs/tasks builds") {
  std::ifstream in(std::string(RLFT_SOURCE_DIR) + "/docs/rewards.md");
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  int n_blocks = 0;
  for (std::size_t pos = doc.find("```yaml\n"); pos != std::string::npos; pos = doc.find("```yaml\n", pos)) {
    const std::size_t start = pos + 8;
    const std::size_t end = doc.find("```", start);
    REQUIRE(end != std::string::npos);
    const std::string yaml = doc.substr(start, end - start);
    pos = end + 3;
    // A reward_model example names a directory the reader trains first (tests/rl/reward_model_test.cpp
    // builds one from a real directory).
    if (yaml.find("type: reward_model") != std::string::npos) continue;
    ++n_blocks;
    CAPTURE(yaml);
    auto view = ConfigView::parse(yaml, "docs/rewards.md");
    std::optional<data::Dataset> dataset;
    if (view.has("data") && view.section("data").get<std::string>("source", "jsonl") == "jsonl") {
      // The file is the reader's own: check the options, not the data.
      read_options<data::SplitOptions>(view.section("data"));
      read_options<data::JsonlOptions>(view.section("data").section("jsonl"));
    } else if (view.has("data")) {
      dataset = data::load_dataset(view.section("data"), data::builtin_sources());
    }
    auto set = RewardSet::from_config(view.section("rewards"), builtin_rewards());
    view.reject_unknown_keys();
    if (dataset) set.check_examples(dataset->train);
  }
  CHECK(n_blocks >= 8);

  for (const auto& entry : std::filesystem::directory_iterator(std::string(RLFT_SOURCE_DIR) + "/configs/tasks")) {
    CAPTURE(entry.path().string());
    auto view = ConfigView::load(entry.path().string());
    auto d = data::load_dataset(view.section("data"), data::builtin_sources());
    auto set = RewardSet::from_config(view.section("rewards"), builtin_rewards());
    view.reject_unknown_keys();
    set.check_examples(d.train);
    // The task's own demonstrations earn the correctness reward.
    ScoreBatch b;
    for (std::size_t i = 0; i < std::min<std::size_t>(d.train.size(), 50); ++i)
      b.add(d.train[i], d.train[i].completion, 8);
    const auto s = set.score(b);
    for (std::size_t i = 0; i < b.size(); ++i) CHECK(s.parts[0][i] == 1.0);
  }
}
