#include "core/sqlite.h"

#include <doctest/doctest.h>

#include "core/error.h"
#include "tests/support/temp_dir.h"

using namespace rlft::sqlite;

TEST_CASE("a transaction rolls back unless committed") {
  rlft::test::TempDir dir;
  Database db(dir.file("t.db"), OpenMode::kCreate);
  db.exec("CREATE TABLE t (x INTEGER)");
  try {
    Transaction tx(db);
    Statement(db, "INSERT INTO t VALUES (?)").bind(1, 1).run();
    throw std::runtime_error("boom");
  } catch (const std::runtime_error&) {
  }
  {
    Transaction tx(db);
    Statement(db, "INSERT INTO t VALUES (?)").bind(1, 2).run();
    tx.commit();
  }
  Statement q(db, "SELECT group_concat(x) FROM t");
  REQUIRE(q.step());
  CHECK(q.column_text(0) == "2");
}

TEST_CASE("statements bind and read every column type") {
  rlft::test::TempDir dir;
  Database db(dir.file("t.db"), OpenMode::kCreate);
  db.exec("CREATE TABLE t (i INTEGER, d REAL, s TEXT, n TEXT)");
  Statement(db, "INSERT INTO t VALUES (?, ?, ?, ?)")
      .bind(1, int64_t{1} << 40)
      .bind(2, 0.25)
      .bind(3, "héllo\n")
      .bind_null(4)
      .run();
  Statement q(db, "SELECT i, d, s, n FROM t");
  REQUIRE(q.step());
  CHECK(q.column_int(0) == (int64_t{1} << 40));
  CHECK(q.column_double(1) == 0.25);
  CHECK(q.column_text(2) == "héllo\n");
  CHECK(q.column_is_null(3));
  CHECK_FALSE(q.step());
}

TEST_CASE("bad SQL names the database and the statement") {
  rlft::test::TempDir dir;
  Database db(dir.file("t.db"), OpenMode::kCreate);
  try {
    Statement(db, "SELEKT 1");
    FAIL("expected an error");
  } catch (const rlft::Error& e) {
    const std::string m = e.what();
    CHECK(m.find("t.db") != std::string::npos);
    CHECK(m.find("SELEKT 1") != std::string::npos);
  }
}
