#include "core/config.h"

#include <doctest/doctest.h>

#include "core/error.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_util.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

using rlft::ConfigError;
using rlft::ConfigView;
using rlft::test::TempDir;

namespace {

/// The message of the ConfigError that `fn` throws ("" when it throws none).
template <typename Fn>
std::string config_error(Fn&& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("typed getters read dotted paths and fall back to defaults") {
  auto c = ConfigView::parse("train:\n  lr: 1e-5\n  steps: 200\n  bf16: true\n  name: \"007\"\n  betas: [0.9, 0.95]\n",
                             "t.yaml");
  CHECK(c.get<double>("train.lr", 0.0) == doctest::Approx(1e-5));
  CHECK(c.get<int>("train.steps", 0) == 200);
  CHECK(c.get<bool>("train.bf16", false));
  CHECK(c.get<std::string>("train.name", "") == "007");
  CHECK(c.get<std::vector<double>>("train.betas", {}) == std::vector<double>{0.9, 0.95});
  CHECK(c.get<int>("train.warmup", 7) == 7);
  CHECK(c.section("train").get<int>("steps", 0) == 200);
  CHECK(c.get<double>("train.steps", 0.0) == 200.0);  // an integer is a number
  CHECK_NOTHROW(c.reject_unknown_keys());
}

TEST_CASE("defaults that getters return appear in the resolved config") {
  auto c = ConfigView::parse("train:\n  lr: 0.1\n", "t.yaml");
  c.get<int>("train.steps", 100);
  c.get<std::string>("run.name", "demo");
  const std::string y = c.to_yaml();
  CHECK(contains(y, "steps: 100"));
  CHECK(contains(y, "name: \"demo\""));
  auto again = ConfigView::parse(y, "resolved.yaml");
  CHECK(again.get<int>("train.steps", 0) == 100);
  CHECK(again.get<double>("train.lr", 0.0) == doctest::Approx(0.1));
}

TEST_CASE("a wrong type names file, line, column, key, value and the expected type") {
  auto c = ConfigView::parse("train:\n  lr: fast\n", "configs/grpo.yaml");
  const auto msg = config_error([&] { c.get<double>("train.lr", 1e-5); });
  CHECK(msg == "configs/grpo.yaml:2:7: train.lr = fast: expected a number");
  CHECK(contains(config_error([&] { c.get<int>("train.lr", 1); }), "expected an integer"));
  CHECK(contains(config_error([&] { c.get<bool>("train.lr", true); }), "expected a bool"));
  auto q = ConfigView::parse("a: \"12\"\nb: [1, x]\n", "q.yaml");
  CHECK(contains(config_error([&] { q.get<int>("a", 0); }), "a = 12: expected an integer"));  // quoted is a string
  CHECK(contains(config_error([&] { q.get<std::vector<int64_t>>("b", {}); }),
                 "q.yaml:2:8: b[1] = x: expected an integer"));
}

TEST_CASE("an out-of-range value names the constraint") {
  auto c = ConfigView::parse("rollout:\n  group_size: 1\n", "g.yaml");
  auto r = c.section("rollout");
  const int g = r.get<int>("group_size", 8);
  const auto msg =
      config_error([&] { r.check(g >= 2, "group_size", "must be >= 2 (advantages are normalised within a group)"); });
  CHECK(msg == "g.yaml:2:15: rollout.group_size = 1: must be >= 2 (advantages are normalised within a group)");
}

TEST_CASE("unknown keys are rejected with a did-you-mean suggestion") {
  auto c = ConfigView::parse("train:\n  lr: 0.1\n  stpes: 10\n", "u.yaml");
  c.get<double>("train.lr", 0.0);
  c.get<int>("train.steps", 5);
  const auto msg = config_error([&] { c.reject_unknown_keys(); });
  CHECK(contains(msg, "u.yaml:3:3: train.stpes = 10: unknown key (did you mean 'steps'?)"));

  auto top = ConfigView::parse("trian:\n  lr: 0.1\n", "u.yaml");
  top.section("train");
  CHECK(contains(config_error([&] { top.reject_unknown_keys(); }), "trian = {…}: unknown key (did you mean 'train'?)"));
}

TEST_CASE("a YAML syntax error carries line and column") {
  TempDir dir;
  const auto path = dir.write("bad.yaml", "train:\n  lr: [1, 2\n  steps: 3\n");
  const auto msg = config_error([&] { ConfigView::load(path); });
  CHECK(contains(msg, path + ":"));
  CHECK(contains(msg, "YAML syntax error"));
  CHECK(contains(msg, ":3:"));
}

TEST_CASE("a missing config file is a config error naming it") {
  CHECK(config_error([] { ConfigView::load("/nonexistent/x.yaml"); }) == "config file '/nonexistent/x.yaml' not found");
}

TEST_CASE("duplicate keys are an error") {
  CHECK(contains(config_error([] { ConfigView::parse("a: 1\na: 2\n", "d.yaml"); }), "d.yaml:2:1: a: duplicate key"));
}

TEST_CASE("includes load first and the including file overrides them") {
  TempDir dir;
  dir.write("base/model.yaml", "model:\n  hidden_size: 64\n  num_layers: 2\ntrain:\n  lr: 0.1\n");
  const auto main = dir.write("run.yaml", "include: base/model.yaml\nmodel:\n  num_layers: 4\n");
  auto c = ConfigView::load(main);
  CHECK(c.get<int>("model.hidden_size", 0) == 64);
  CHECK(c.get<int>("model.num_layers", 0) == 4);
  CHECK(c.get<double>("train.lr", 0.0) == doctest::Approx(0.1));
  CHECK(c.location("model.hidden_size").file == dir.path() + "/base/model.yaml");
  CHECK_FALSE(contains(c.to_yaml(), "include"));

  dir.write("a.yaml", "include: b.yaml\n");
  dir.write("b.yaml", "include: a.yaml\n");
  CHECK(contains(config_error([&] { ConfigView::load(dir.file("a.yaml")); }), "include cycle"));
  const auto missing = dir.write("m.yaml", "include: [nope.yaml]\n");
  CHECK(contains(config_error([&] { ConfigView::load(missing); }), "m.yaml:1:11: include = nope.yaml: included file"));
}

TEST_CASE("--set overrides keep the type of the value they replace") {
  const std::string yaml = "train:\n  lr: 0.1\n  steps: 10\n  bf16: false\n  name: run\n  betas: [0.9, 0.99]\n";
  auto c = ConfigView::parse(
      yaml, "s.yaml",
      {"train.lr=1e-4", "train.steps=20", "train.bf16=true", "train.name=42", "train.betas=[0.8, 0.9]"});
  CHECK(c.get<double>("train.lr", 0.0) == doctest::Approx(1e-4));
  CHECK(c.get<int>("train.steps", 0) == 20);
  CHECK(c.get<bool>("train.bf16", false));
  CHECK(c.get<std::string>("train.name", "") == "42");
  CHECK(c.get<std::vector<double>>("train.betas", {}) == std::vector<double>{0.8, 0.9});
  CHECK(ConfigView::parse(yaml, "s.yaml", {"train.lr=1"}).get<double>("train.lr", 0.0) == 1.0);

  CHECK(contains(config_error([&] { ConfigView::parse(yaml, "s.yaml", {"train.steps=fast"}); }),
                 "--set train.steps=fast: train.steps replaces 10 from s.yaml:3:10: expected an integer, got 'fast'"));
  CHECK(contains(config_error([&] { ConfigView::parse(yaml, "s.yaml", {"train.bf16=2"}); }), "expected a bool"));
  CHECK(contains(config_error([&] { ConfigView::parse(yaml, "s.yaml", {"train.betas=0.9"}); }), "expected a list"));
  CHECK(contains(config_error([&] { ConfigView::parse(yaml, "s.yaml", {"train.lr.x=1"}); }),
                 "is a value, not a section"));
  CHECK(contains(config_error([&] { ConfigView::parse(yaml, "s.yaml", {"train.lr"}); }), "expected KEY=VALUE"));
}

TEST_CASE("--set on a key that does not exist is rejected with its source and a suggestion") {
  auto c = ConfigView::parse("train:\n  lr: 0.1\n", "s.yaml", {"train.lrr=0.5"});
  c.get<double>("train.lr", 0.0);
  CHECK(config_error([&] { c.reject_unknown_keys(); }) == "--set: train.lrr = 0.5: unknown key (did you mean 'lr'?)");
}

TEST_CASE("the hash is equal for equal configs and differs otherwise") {
  auto a = ConfigView::parse("a: 1\nb: [x, y]\n");
  auto b = ConfigView::parse("a: 1\nb: [x, y]\n");
  auto c = ConfigView::parse("a: 2\nb: [x, y]\n");
  CHECK(a.hash() == b.hash());
  CHECK(a.hash() != c.hash());
}

TEST_CASE("closest_match suggests near names only") {
  CHECK(rlft::closest_match("lrr", {"lr", "steps"}) == std::optional<std::string>("lr"));
  CHECK_FALSE(rlft::closest_match("zzzzzz", {"lr", "steps"}).has_value());
  CHECK(rlft::edit_distance("kitten", "sitting") == 3);
}

namespace rlft::config_test {

/// An options struct of the convention (core/config.h), for read_options.
struct WindowOptions {
  int64_t size = 8;    ///< >= 1
  int64_t stride = 1;  ///< in [1, size]
  int64_t pad = 0;     ///< set in code only (no YAML key); >= 0
  static WindowOptions from_config(const ConfigView& s) {
    WindowOptions o;
    o.size = s.get<int64_t>("size", o.size);
    o.stride = s.get<int64_t>("stride", o.stride);
    return o;
  }
  void validate() const {
    RLFT_CHECK_OPTION(stride >= 1 && stride <= size, "stride", stride, "must be in [1, size = {}]", size);
    RLFT_CHECK_OPTION(size >= 1, "size", size, "must be >= 1");
    RLFT_CHECK_OPTION(pad >= 0, "pad", pad, "must be >= 0");
    RLFT_CHECK_OPTION(size != 7, "", "", "a window of 7 is not allowed");
  }
};

}  // namespace rlft::config_test

TEST_CASE("read_options reports a failed field at its own position, a default or a --set") {
  using rlft::config_test::WindowOptions;
  const auto read = [](const std::string& yaml, const std::vector<std::string>& overrides = {}) {
    return config_error(
        [&] { rlft::read_options<WindowOptions>(ConfigView::parse(yaml, "w.yaml", overrides).section("w")); });
  };
  CHECK(read("w:\n  size: 4\n  stride: 5\n") == "w.yaml:3:11: w.stride = 5: must be in [1, size = 4]");
  CHECK(read("w:\n  size: 4\n", {"w.stride=5"}) == "--set: w.stride = 5: must be in [1, size = 4]");
  CHECK(read("w:\n  size: 0\n") == "(default): w.stride = 1: must be in [1, size = 0]");
  CHECK(read("w:\n  size: 7\n") == "w.yaml:2:3: w: a window of 7 is not allowed");
  CHECK(read("w:\n  size: 4\n").empty());
  const auto view = ConfigView::parse("w:\n  size: 4\n", "w.yaml");
  CHECK(config_error([&] { view.section("w").reject(rlft::OptionError("pad", "-1", "must be >= 0")); }) ==
        "w.yaml:2:3: w.pad = -1: must be >= 0");  // a field no key sets: at its section

  WindowOptions o;
  o.pad = -1;
  CHECK(error_of([&] { o.validate(); }) == "pad = -1: must be >= 0");
  CHECK_THROWS_AS(o.validate(), rlft::ConfigError);  // an OptionError is a config error (exit code 2)
}
