#include <doctest/doctest.h>

#include <set>

#include "core/config.h"
#include "data/dataset.h"
#include "data/dataset_jsonl.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_util.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

using namespace rlft;
using data::Example;

namespace {

std::vector<Example> numbered(int n) {
  std::vector<Example> out(n);
  for (int i = 0; i < n; ++i) {
    out[i].id = std::to_string(i);
    out[i].messages = {{"user", "q" + std::to_string(i)}};
  }
  return out;
}

std::vector<std::string> ids(const std::vector<Example>& v) {
  std::vector<std::string> out;
  for (const auto& e : v) out.push_back(e.id);
  return out;
}

data::Dataset load(const std::string& yaml) {
  auto view = ConfigView::parse(yaml, "cfg.yaml");
  auto d = data::load_dataset(view.section("data"), data::builtin_sources());
  view.reject_unknown_keys();
  return d;
}

}  // namespace

TEST_CASE("the split holds out eval_size examples, disjoint from train, the same for the same seed") {
  data::SplitOptions o;
  o.seed = 3;
  o.eval_size = 10;
  auto a = data::split_examples(numbered(100), o);
  auto b = data::split_examples(numbered(100), o);
  CHECK(a.eval.size() == 10);
  CHECK(a.train.size() == 90);
  CHECK(ids(a.train) == ids(b.train));
  CHECK(ids(a.eval) == ids(b.eval));
  std::set<std::string> all;
  for (const auto& id : ids(a.train)) all.insert(id);
  for (const auto& id : ids(a.eval)) CHECK(all.insert(id).second);
  CHECK(all.size() == 100);
  o.seed = 4;
  CHECK(ids(data::split_examples(numbered(100), o).eval) != ids(a.eval));
}

TEST_CASE("eval keeps source order; train is shuffled only when asked") {
  data::SplitOptions o;
  o.eval_fraction = 0.2;
  o.shuffle = false;
  auto d = data::split_examples(numbered(50), o);
  CHECK(d.eval.size() == 10);
  auto in_order = [](const std::vector<Example>& v) {
    for (std::size_t i = 1; i < v.size(); ++i)
      if (std::stoi(v[i - 1].id) > std::stoi(v[i].id)) return false;
    return true;
  };
  CHECK(in_order(d.eval));
  CHECK(in_order(d.train));
  o.shuffle = true;
  auto s = data::split_examples(numbered(50), o);
  CHECK(ids(s.eval) == ids(d.eval));  // the split does not depend on the shuffle
  CHECK_FALSE(in_order(s.train));
}

TEST_CASE("a split that leaves no training example is an error") {
  data::SplitOptions o;
  o.eval_size = 5;
  CHECK_THROWS_WITH_AS(data::split_examples(numbered(5), o), doctest::Contains("no training example"), Error);
}

TEST_CASE("epoch order is a permutation fixed by seed and epoch") {
  auto a = data::epoch_order(20, 7, 0);
  CHECK(a == data::epoch_order(20, 7, 0));
  CHECK(a != data::epoch_order(20, 7, 1));
  CHECK(a != data::epoch_order(20, 8, 0));
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 20; ++i) CHECK(sorted[i] == i);
  CHECK(data::epoch_order(0, 1, 0).empty());
}

TEST_CASE("templates replace placeholders and keep doubled braces") {
  CHECK(data::render_template("Q: {q} {{x}}", {{"q", "2+2"}}) == "Q: 2+2 {x}");
  CHECK_THROWS_WITH_AS(data::render_template("{nope}", {{"q", ""}}), "unknown placeholder {nope} (known: {q})", Error);
  CHECK_THROWS_AS(data::render_template("open {q", {{"q", ""}}), Error);
  CHECK_THROWS_AS(data::render_template("close } here", {}), Error);
  CHECK(data::template_placeholders("{a} and {b}{{c}}") == std::vector<std::string>{"a", "b"});
}

TEST_CASE("a JSONL dataset maps prompt, answer, system and meta fields") {
  test::TempDir dir;
  const auto path = dir.write("gsm.jsonl",
                              "{\"question\": \"What is 2+2?\", \"answer\": \"#### 4\", \"extra\": {\"n\": [1, 2]}}\n"
                              "\n"
                              "{\"question\": \"What is 3+3?\", \"answer\": 6, \"extra\": {\"n\": [3]}}\n");
  auto d = load("data:\n  source: jsonl\n  shuffle: false\n  jsonl:\n    path: " + path +
                "\n    fields: {prompt: question, answer: answer, meta: {numbers: extra.n}}\n"
                "    system_prompt: Be brief.\n    prompt_template: \"Q: {prompt}\"\n");
  REQUIRE(d.train.size() == 2);
  CHECK(d.eval.empty());
  const auto& e = d.train[0];
  CHECK(e.id == "gsm.jsonl:1");
  CHECK(e.system() == "Be brief.");
  CHECK(e.prompt() == "Q: What is 2+2?");
  CHECK(e.reference == "#### 4");
  CHECK(e.meta["numbers"] == nlohmann::json::array({1, 2}));
  CHECK(d.train[1].id == "gsm.jsonl:3");
  CHECK(d.train[1].reference == "6");  // a number answer becomes its text
}

TEST_CASE("chat-message rows: a trailing assistant message is the completion") {
  test::TempDir dir;
  const auto path = dir.write(
      "chat.jsonl",
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})"
      "\n");
  auto d = load("data:\n  jsonl:\n    path: " + path + "\n    fields: {messages: messages}\n");
  REQUIRE(d.train.size() == 1);
  CHECK(d.train[0].messages.size() == 2);
  CHECK(d.train[0].prompt() == "hi");
  CHECK(d.train[0].completion == "hello");
}

TEST_CASE("a separate eval file is the eval split") {
  test::TempDir dir;
  const auto train = dir.write("t.jsonl", "{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n");
  const auto eval = dir.write("e.jsonl", "{\"prompt\": \"c\"}\n");
  auto d = load("data:\n  jsonl: {path: " + train + ", eval_path: " + eval + "}\n");
  CHECK(d.train.size() == 2);
  REQUIRE(d.eval.size() == 1);
  CHECK(d.eval[0].prompt() == "c");
  CHECK(error_of([&] {
          load("data:\n  eval_size: 1\n  jsonl: {path: " + train + ", eval_path: " + eval + "}\n");
        }).find("data.eval_size = 1: the source has its own eval set") != std::string::npos);
}

TEST_CASE("bad dataset rows name the file, the line and the field") {
  test::TempDir dir;
  struct Row {
    std::string content;
    std::string error;
  };
  const Row rows[] = {
      {"{\"prompt\": \"ok\"}\n{\"prompt\": }\n", "d.jsonl:2:12: malformed JSON"},
      {"{\"question\": \"no prompt\"}\n", "d.jsonl:1: field 'prompt' is missing"},
      {"{\"prompt\": 5}\n", "d.jsonl:1: field 'prompt' must be a string, got a number"},
      {"{\"prompt\": \"   \"}\n", "d.jsonl:1: field 'prompt' is empty"},
      {"[1, 2]\n", "d.jsonl:1:1: expected a JSON object, got a list"},
      {"{\"prompt\": \"a\xC3\"}\n", "d.jsonl:1:14: invalid UTF-8 (byte 0xC3)"},
      {"", "no examples"},
      {"{\"prompt\": \"" + std::string(2000, 'x') + "\"}\n", "d.jsonl:1: line is longer than 1024 bytes"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.error);
    const auto path = dir.write("d.jsonl", r.content);
    data::JsonlOptions o;
    o.path = path;
    o.max_line_bytes = 1024;
    const std::string err = error_of([&] { data::read_jsonl_examples(path, o); });
    CHECK(err.find(r.error) != std::string::npos);
  }
}

TEST_CASE("bad chat messages name the message and the key") {
  test::TempDir dir;
  data::JsonlOptions o;
  o.fields.messages = "m";
  o.fields.prompt.clear();
  const std::pair<std::string, std::string> rows[] = {
      {R"({"m": [{"role": "user"}]})", "field 'm[0].content' is missing"},
      {R"({"m": [{"role": "wizard", "content": "x"}]})", "field 'm[0].role' is 'wizard'"},
      {R"({"m": [{"role": "assistant", "content": "x"}]})", "must end with a user message"},
      {R"({"m": []})", "field 'm' is an empty list"},
      {R"({"m": "text"})", "field 'm' must be a list of chat messages, got a string"},
  };
  for (const auto& [line, error] : rows) {
    CAPTURE(line);
    const auto path = dir.write("m.jsonl", line + "\n");
    o.path = path;
    CHECK(error_of([&] { data::read_jsonl_examples(path, o); }).find(error) != std::string::npos);
  }
}

TEST_CASE("dataset config errors name the dotted key") {
  CHECK(error_of([] { load("data:\n  source: gsm8k\n"); })
            .find("cfg.yaml:2:11: data.source = gsm8k: unknown data source 'gsm8k': known sources are arithmetic, "
                  "countdown, jsonl") != std::string::npos);
  CHECK(error_of([] {
          load("data:\n  source: jsonl\n  jsonl: {fields: {prompt: q}}\n");
        }).find("data.jsonl.path: required key is missing") != std::string::npos);
  CHECK(error_of([] {
          load("data:\n  eval_fraction: 1.5\n  source: arithmetic\n");
        }).find("data.eval_fraction = 1.5: must be in [0, 1)") != std::string::npos);
  CHECK(error_of([] {
          load("data:\n  jsonl: {path: x.jsonl, prompt_template: \"{prompt\"}\n");
        }).find("data.jsonl.prompt_template") != std::string::npos);
  CHECK(error_of([] {
          load("data:\n  jsonl: {path: x.jsonl, fields: {prompt: q, messages: m}}\n");
        }).find("map either prompt or messages") != std::string::npos);
}
