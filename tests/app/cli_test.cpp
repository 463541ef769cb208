// The rlft command line as a user meets it: a real process, its exit code and its words.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>

#include "data/store.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_util.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

using rlft::test::run_rlft;
using rlft::test::TempDir;

namespace {}  // namespace

TEST_CASE("--help and --version exit 0") {
  auto h = run_rlft({"--help"});
  CHECK(h.exit_code == 0);
  for (const char* cmd :
       {"sft", "train", "rm", "generate", "eval", "feedback", "launch", "bench", "runs", "config", "doctor"})
    CHECK_MESSAGE(contains(h.out, cmd), cmd);
  auto v = run_rlft({"--version"});
  CHECK(v.exit_code == 0);
  CHECK(contains(v.out, "rlft 0."));
}

TEST_CASE("an unknown subcommand is a usage error with a suggestion") {
  auto r = run_rlft({"trian", "x.yaml"});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "unknown command 'trian' (did you mean 'train'?)"));
}

TEST_CASE("an unknown flag is a usage error") {
  auto r = run_rlft({"doctor", "--fast"});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "--fast"));
  CHECK(run_rlft({}).exit_code == 2);
}

TEST_CASE("config show prints the resolved config with includes, overrides and defaults") {
  TempDir dir;
  dir.write("base.yaml", "run:\n  seed: 3\n  threads: 1\n");
  const auto cfg = dir.write("job.yaml", "include: base.yaml\nrun:\n  name: demo  # the run's name\n");
  auto r = run_rlft({"config", "show", cfg, "--set", "run.seed=11", "--hash"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(contains(r.out, "name: demo"));
  CHECK(contains(r.out, "seed: 11"));
  CHECK(contains(r.out, "threads: 1"));
  CHECK(contains(r.out, "store: \"runs/rlft.db\""));  // a default, filled in
  CHECK(contains(r.out, "# hash: "));
}

TEST_CASE("every config error exits 2 with file, line, key and reason") {
  TempDir dir;
  struct Row {
    const char* yaml;
    std::vector<std::string> extra;
    const char* expect;
  };
  const Row rows[] = {
      {"run:\n  seed: [1\n", {}, "YAML syntax error"},
      {"run:\n  sed: 1\n", {}, "job.yaml:2:3: run.sed = 1: unknown key (did you mean 'seed'?)"},
      {"run:\n  seed: fast\n", {}, "job.yaml:2:9: run.seed = fast: expected an integer"},
      {"run:\n  threads: -4\n", {}, "job.yaml:2:12: run.threads = -4: must be in [0, 1024] (0 = every core)"},
      {"run:\n  device: tpu\n", {}, "run.device = tpu: must be cpu, cuda, cuda:N or auto"},
      {"run:\n  seed: 1\n", {"--set", "run.sede=2"}, "--set: run.sede = 2: unknown key (did you mean 'seed'?)"},
      {"run:\n  seed: 1\n", {"--set", "run.seed=x"}, "expected an integer, got 'x'"},
      {"trian: {}\n", {}, "trian = {…}: unknown key"},
  };
  for (const auto& row : rows) {
    const auto cfg = dir.write("job.yaml", row.yaml);
    std::vector<std::string> args{"config", "show", cfg};
    args.insert(args.end(), row.extra.begin(), row.extra.end());
    auto r = run_rlft(args);
    CHECK_MESSAGE(r.exit_code == 2, row.yaml);
    CHECK_MESSAGE(contains(r.err, row.expect), r.err);
  }
  auto missing = run_rlft({"config", "show", dir.file("nope.yaml")});
  CHECK(missing.exit_code == 2);
  CHECK(contains(missing.err, "config file '" + dir.file("nope.yaml") + "' not found"));
}

TEST_CASE("store errors are runtime failures that name the path") {
  TempDir dir;
  auto r = run_rlft({"runs", "--store", "/nonexistent-rlft/x/rlft.db"});
  CHECK(r.exit_code == 1);
  CHECK(contains(r.err, "no store at /nonexistent-rlft/x/rlft.db: directory /nonexistent-rlft/x does not exist"));
  const auto junk = dir.write("junk.db", std::string(2048, 'j'));
  auto j = run_rlft({"runs", "--store", junk});
  CHECK(j.exit_code == 1);
  CHECK(contains(j.err, "is not an rlft store: not an SQLite database"));
}

TEST_CASE("doctor reports LibTorch, BLAS and GEMM rates") {
  auto r = run_rlft({"doctor", "--json", "--n", "256"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["libtorch_version"].get<std::string>().size() > 0);
  CHECK(j["gemm_fp32_gflops"].get<double>() > 0.0);
  CHECK(j["gemm_bf16_gflops"].get<double>() > 0.0);
  CHECK(j["threads"]["intra_op"].get<int>() >= 1);
  auto text = run_rlft({"doctor", "--n", "128"});
  CHECK(text.exit_code == 0);
  CHECK(contains(text.out, "GEMM fp32"));
  CHECK(contains(text.out, "BLAS"));
}

TEST_CASE("runs plot draws one SVG line per metric with one vertex per step, text escaped") {
  TempDir dir;
  const auto path = dir.file("rlft.db");
  {
    auto store = rlft::data::Store::open(path, true);
    rlft::data::RunRecord run;
    run.name = "plotme";
    run.kind = "train";
    const int64_t id = store.create_run(run);
    for (int s = 1; s <= 7; ++s)
      store.log_metrics(id, s, {{"reward/mean", 0.1 * s}, {"kl", 0.01}, {"<b>x</b>", 1.0 * s}});
  }
  const auto svg_path = dir.file("out.svg");
  auto r =
      run_rlft({"runs", "plot", "plotme", "--metrics", "reward/mean,kl,<b>x</b>", "-o", svg_path, "--store", path});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  std::ifstream f(svg_path);
  const std::string svg((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(contains(svg, "data-metric=\"reward/mean\" data-points=\"7\""));
  CHECK(contains(svg, "data-metric=\"kl\" data-points=\"7\""));  // a flat line still draws
  CHECK(contains(svg, "&lt;b&gt;x&lt;/b&gt;"));
  CHECK_FALSE(contains(svg, "<b>"));
  auto bad = run_rlft({"runs", "plot", "plotme", "--metrics", "reward/maen", "--store", path});
  CHECK(bad.exit_code == 2);
  CHECK(contains(bad.err, "run 'plotme' has no metric 'reward/maen' (did you mean 'reward/mean'?)"));
  CHECK(run_rlft({"runs", "plot", "nope", "--store", path}).exit_code == 1);
}
