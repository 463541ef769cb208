#include "core/sqlite.h"

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "core/error.h"

namespace rlft::sqlite {
namespace fs = std::filesystem;

Database::Database(const std::string& path, OpenMode mode, int busy_timeout_ms) : path_(path) {
  std::error_code ec;
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (mode == OpenMode::kExisting) {
    RLFT_CHECK(fs::exists(dir, ec), "no store at {}: directory {} does not exist", path, dir.string());
    RLFT_CHECK(fs::exists(p, ec), "no store at {}: the file does not exist (a run creates it)", path);
  } else {
    if (!fs::exists(dir, ec)) {
      fs::create_directories(dir, ec);
      RLFT_CHECK(!ec, "cannot create the store directory {} for {}: {}", dir.string(), path, ec.message());
    }
    RLFT_CHECK(fs::is_directory(dir, ec), "cannot create the store {}: {} is not a directory", path, dir.string());
    if (!fs::exists(p, ec))
      RLFT_CHECK(::access(dir.c_str(), W_OK) == 0, "cannot create the store {}: directory {} is not writable", path,
                 dir.string());
    else
      RLFT_CHECK(::access(p.c_str(), W_OK) == 0, "cannot write the store {}: the file is read-only", path);
  }
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  if (mode == OpenMode::kExisting)
    flags = ::access(p.c_str(), W_OK) == 0 ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(fmt::format("cannot open the store {}: {}", path, msg));
  }
  sqlite3_busy_timeout(db_, busy_timeout_ms);
  sqlite3_extended_result_codes(db_, 1);
  // Touch the schema now so that a file that is not a database fails here, by name.
  char* err = nullptr;
  const int rc2 = sqlite3_exec(db_, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, &err);
  if (rc2 != SQLITE_OK) {
    const std::string msg = err ? err : sqlite3_errstr(rc2);
    sqlite3_free(err);
    sqlite3_close(db_);
    db_ = nullptr;
    if ((rc2 & 0xff) == SQLITE_NOTADB)
      throw Error(fmt::format("{} is not an rlft store: not an SQLite database", path));
    throw Error(fmt::format("cannot read the store {}: {}", path, msg));
  }
}

Database::~Database() {
  if (db_) sqlite3_close_v2(db_);
}

Database::Database(Database&& other) noexcept : db_(other.db_), path_(std::move(other.path_)) {
  other.db_ = nullptr;
}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    if (db_) sqlite3_close_v2(db_);
    db_ = other.db_;
    path_ = std::move(other.path_);
    other.db_ = nullptr;
  }
  return *this;
}

void Database::raise(const std::string& what) const {
  throw Error(fmt::format("{}: {}: {}", path_, what, db_ ? sqlite3_errmsg(db_) : "closed"));
}

void Database::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw Error(fmt::format("{}: {}: {}", path_, sql, msg));
  }
}

int64_t Database::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_);
}

Statement::Statement(Database& db, const std::string& sql) : db_(&db), sql_(sql) {
  if (sqlite3_prepare_v2(db.handle(), sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) db.raise("prepare " + sql);
}

Statement::~Statement() {
  if (stmt_) sqlite3_finalize(stmt_);
}

Statement::Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_), sql_(std::move(other.sql_)) {
  other.stmt_ = nullptr;
}

Statement& Statement::bind(int index, int64_t value) {
  if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) db_->raise("bind " + sql_);
  return *this;
}
Statement& Statement::bind(int index, double value) {
  if (sqlite3_bind_double(stmt_, index, value) != SQLITE_OK) db_->raise("bind " + sql_);
  return *this;
}
Statement& Statement::bind(int index, std::string_view value) {
  if (sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT) != SQLITE_OK)
    db_->raise("bind " + sql_);
  return *this;
}
Statement& Statement::bind_null(int index) {
  if (sqlite3_bind_null(stmt_, index) != SQLITE_OK) db_->raise("bind " + sql_);
  return *this;
}
Statement& Statement::bind_blob(int index, const void* data, std::size_t size) {
  if (sqlite3_bind_blob(stmt_, index, data, static_cast<int>(size), SQLITE_TRANSIENT) != SQLITE_OK)
    db_->raise("bind " + sql_);
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_->raise(sql_);
}

void Statement::run() {
  while (step()) {
  }
  reset();
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t Statement::column_int(int col) const {
  return sqlite3_column_int64(stmt_, col);
}
double Statement::column_double(int col) const {
  return sqlite3_column_double(stmt_, col);
}
std::string Statement::column_text(int col) const {
  const auto* p = sqlite3_column_text(stmt_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
           : std::string();
}
bool Statement::column_is_null(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

Transaction::Transaction(Database& db) : db_(db) {
  db_.exec("BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
  if (!done_) {
    try {
      db_.exec("ROLLBACK");
    } catch (...) {
    }
  }
}

void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace rlft::sqlite
