#include "data/store.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "core/error.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_util.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

using rlft::data::Store;
using rlft::test::TempDir;

namespace {

rlft::data::RunRecord demo_run(const std::string& name) {
  rlft::data::RunRecord r;
  r.name = name;
  r.kind = "train";
  r.config = "run:\n  name: " + name + "\n";
  r.config_hash = "abc";
  r.git_revision = "deadbeef";
  return r;
}

/// Makes `dir` unwritable even for root (immutable flag) or, failing that, by mode bits.
/// Returns false when neither works here.
bool make_unwritable(const std::string& dir) {
  if (::geteuid() == 0) {
    if (rlft::test::run_process({"chattr", "+i", dir}).exit_code != 0) return false;
  } else {
    ::chmod(dir.c_str(), 0555);
  }
  return ::access(dir.c_str(), W_OK) != 0;
}

void make_writable(const std::string& dir) {
  if (::geteuid() == 0) rlft::test::run_process({"chattr", "-i", dir});
  ::chmod(dir.c_str(), 0755);
}

}  // namespace

TEST_CASE("a run's metrics, rollouts and checkpoints round-trip through the store") {
  TempDir dir;
  const auto path = dir.file("runs/rlft.db");  // the directory is created
  auto store = Store::open(path, true);
  const int64_t id = store.create_run(demo_run("r1"));
  store.log_metrics(id, 1, {{"reward/mean", 0.25}, {"loss", 1.5}});
  store.log_metrics(id, 2, {{"reward/mean", 0.5}, {"loss", 1.0}});
  store.log_metrics(id, 2, {{"loss", 0.75}});  // a re-logged step replaces its value
  const auto last = store.last_metrics(id);
  REQUIRE(last.size() == 2);
  CHECK(last[0].name == "loss");
  CHECK(last[0].step == 2);
  CHECK(last[0].value == 0.75);
  CHECK(last[1].value == 0.5);
  CHECK(store.metric_series(id, "reward/mean").size() == 2);

  rlft::data::RolloutRecord ro;
  ro.step = 2;
  ro.prompt = "1+1=";
  ro.completion = "<answer>2</answer> <script>x</script>";
  ro.reward = 1.5;
  ro.parts = {{"math_answer", 1.0}, {"format", 0.5}};
  ro.advantage = 0.7;
  ro.finish_reason = "stop";
  store.add_rollouts(id, {ro});
  const auto back = store.rollouts(id, 2);
  REQUIRE(back.size() == 1);
  CHECK(back[0].completion == ro.completion);
  CHECK(back[0].parts.size() == 2);
  CHECK(store.rollouts(id, 3).empty());

  store.add_checkpoint(id, 2, "runs/r1/step-2");
  CHECK(store.checkpoints(id).at(0).path == "runs/r1/step-2");
  store.finish_run(id, "finished");
  CHECK(store.find_run("r1")->status == "finished");
  CHECK(contains(error_of([&] { store.create_run(demo_run("r1")); }), "a run named 'r1' exists already"));
}

TEST_CASE("the schema is versioned and a newer store is refused") {
  TempDir dir;
  const auto path = dir.file("rlft.db");
  { Store::open(path, true); }
  {
    rlft::sqlite::Database db(path, rlft::sqlite::OpenMode::kExisting);
    rlft::sqlite::Statement q(db, "PRAGMA user_version");
    REQUIRE(q.step());
    CHECK(q.column_int(0) == rlft::data::store_schema_version());
    db.exec("PRAGMA user_version = 99");
  }
  const auto msg = error_of([&] { Store::open(path, true); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "newer rlft (store schema 99"));
}

TEST_CASE("a file that is not SQLite is refused by name") {
  TempDir dir;
  const auto path = dir.write("notes.db", std::string(4096, 'x'));
  const auto msg = error_of([&] { Store::open(path, false); });
  CHECK(msg == path + " is not an rlft store: not an SQLite database");
}

TEST_CASE("an SQLite file of another program is not taken over") {
  TempDir dir;
  const auto path = dir.file("other.db");
  {
    rlft::sqlite::Database db(path, rlft::sqlite::OpenMode::kCreate);
    db.exec("CREATE TABLE mine (x)");
  }
  CHECK(contains(error_of([&] { Store::open(path, true); }), "not an rlft store"));
}

TEST_CASE("a store in a missing directory is a clear error for readers") {
  CHECK(error_of([] { Store::open("/nonexistent-rlft/dir/rlft.db", false); }) ==
        "no store at /nonexistent-rlft/dir/rlft.db: directory /nonexistent-rlft/dir does not exist");
  TempDir dir;
  CHECK(contains(error_of([&] { Store::open(dir.file("rlft.db"), false); }), "the file does not exist"));
}

TEST_CASE("a store in a read-only directory is a clear error") {
  TempDir dir;
  const std::string ro = dir.file("ro");
  std::filesystem::create_directories(ro);
  if (!make_unwritable(ro)) {
    make_writable(ro);
    FAIL("could not make a read-only directory here (chattr +i or chmod) to test with");
  }
  const auto msg = error_of([&] { Store::open(ro + "/rlft.db", true); });
  make_writable(ro);
  CHECK(msg == "cannot create the store " + ro + "/rlft.db: directory " + ro + " is not writable");
  // A file standing where the directory should be.
  dir.write("plain", "x");
  CHECK(contains(error_of([&] { Store::open(dir.file("plain/rlft.db"), true); }), "plain is not a directory"));
}

TEST_CASE("another process reads the store while a run holds a write transaction") {
  TempDir dir;
  const auto path = dir.file("rlft.db");
  auto store = Store::open(path, true);
  const int64_t id = store.create_run(demo_run("committed"));
  store.log_metrics(id, 1, {{"reward/mean", 0.5}});
  rlft::sqlite::Transaction tx(store.db());  // an open write, as during a step
  rlft::sqlite::Statement(store.db(),
                          "INSERT INTO runs (name, kind, status, config, config_hash, git_revision, started_at) "
                          "VALUES ('uncommitted', 'train', 'running', '', '', '', 0)")
      .run();
  auto r = rlft::test::run_rlft({"runs", "--store", path});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  CHECK(contains(r.out, "committed"));
  CHECK_FALSE(contains(r.out, "uncommitted"));
  auto show = rlft::test::run_rlft({"runs", "show", "committed", "--store", path});
  CHECK_MESSAGE(show.exit_code == 0, show.err);
  CHECK(contains(show.out, "reward/mean"));
  tx.commit();
}
