// `rlft feedback import/export/stats` end to end, through the real binary.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_util.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

using rlft::test::run_rlft;
using rlft::test::TempDir;

namespace {

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("rlft feedback import, stats and export round-trip") {
  TempDir dir;
  const std::string store = dir.file("runs/rlft.db");
  const std::string file =
      dir.write("prefs.jsonl", R"({"prompt": "2+2?", "chosen": "4", "rejected": "5", "margin": 2, "annotator": "ann"})"
                               "\n"
                               R"({"prompt": "3+3?", "chosen": "6", "rejected": "7"})"
                               "\n");
  auto r = run_rlft({"feedback", "import", file, "--format", "pairs", "--store", store, "--annotator", "bob"});
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "imported 2 pairs from " + file));

  r = run_rlft({"feedback", "import", file, "--format", "pairs", "--store", store});
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "imported 0 pairs"));
  CHECK(contains(r.out, "2 already stored"));

  r = run_rlft({"feedback", "stats", "--store", store});
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "pairs       2 (0 chat) from 2 imports"));
  CHECK(contains(r.out, "margins     1 pairs: min 2, mean 2, max 2"));
  CHECK(contains(r.out, "ann"));
  CHECK(contains(r.out, "bob"));

  r = run_rlft({"feedback", "stats", "--store", store, "--json"});
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "\"pairs\": 2"));

  const std::string out = dir.file("export.jsonl");
  r = run_rlft({"feedback", "export", out, "--store", store});
  CHECK(r.exit_code == 0);
  const std::string exported = read(out);
  CHECK(
      contains(exported, R"({"prompt":"2+2?","chosen":"4","rejected":"5","margin":2.0,"annotator":"ann","source":")"));
  CHECK(contains(exported, R"("annotator":"bob")"));

  const std::string store2 = dir.file("other.db");
  r = run_rlft({"feedback", "import", out, "--format", "pairs", "--store", store2});
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "imported 2 pairs"));
  r = run_rlft({"feedback", "export", "-", "--store", store2});
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, R"("prompt":"3+3?","chosen":"6","rejected":"7","annotator":"bob")"));
}

TEST_CASE("rlft feedback import: a bad line aborts with exit 1; --skip-invalid reports it") {
  TempDir dir;
  const std::string store = dir.file("s.db");
  const std::string file = dir.write("bad.jsonl", R"({"prompt": "p", "chosen": "a", "rejected": "b"})"
                                                  "\n"
                                                  R"({"prompt": "p", "chosen": "a"})"
                                                  "\n");
  auto r = run_rlft({"feedback", "import", file, "--format", "pairs", "--store", store});
  CHECK(r.exit_code == 1);
  CHECK(contains(r.err, file + ":2: field 'rejected' is missing"));
  r = run_rlft({"feedback", "stats", "--store", store});
  CHECK(contains(r.out, "pairs       0"));

  r = run_rlft({"feedback", "import", file, "--format", "pairs", "--store", store, "--skip-invalid"});
  CHECK(r.exit_code == 0);
  CHECK(contains(r.err, "skipped " + file + ":2: field 'rejected' is missing"));
  CHECK(contains(r.out, "imported 1 pairs"));
  CHECK(contains(r.out, "1 bad lines skipped"));
}

TEST_CASE("rlft feedback import --dry-run writes nothing, not even a new store") {
  TempDir dir;
  const std::string store = dir.file("new/s.db");
  const std::string file = dir.write("a.jsonl", R"({"prompt": "p", "chosen": "a", "rejected": "b"})"
                                                "\n");
  auto r = run_rlft({"feedback", "import", file, "--format", "pairs", "--store", store, "--dry-run"});
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "would import 1 pairs"));
  CHECK_FALSE(std::filesystem::exists(store));
}

TEST_CASE("rlft feedback: usage errors exit 2") {
  TempDir dir;
  const std::string file = dir.write("a.jsonl", "{}\n");
  auto r = run_rlft({"feedback", "import", file, "--format", "dpo", "--store", dir.file("s.db")});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "--format dpo: known formats are hh, pairs, ranked, scores"));
  r = run_rlft({"feedback", "import", file});
  CHECK(r.exit_code == 2);
  r = run_rlft({"feedback"});
  CHECK(r.exit_code == 2);
  r = run_rlft({"feedback", "stats", "--store", dir.file("missing.db")});
  CHECK(r.exit_code == 1);
}
