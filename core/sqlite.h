#pragma once
// RAII over SQLite: a Database owns a connection, a Statement a prepared statement, a
// Transaction a BEGIN IMMEDIATE … COMMIT that rolls back unless committed. Every error
// names the database file and the SQL that failed.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace rlft::sqlite {

enum class OpenMode {
  kExisting,  ///< the file must exist (opened read-write when the file allows, for WAL readers)
  kCreate,    ///< created, with its directory, when missing
};

class Database {
 public:
  /// Opens `path`. Throws rlft::Error naming the path when the file (or, for kCreate, its
  /// directory) is missing or not writable, or when the file is not an SQLite database.
  Database(const std::string& path, OpenMode mode, int busy_timeout_ms = 10000);
  ~Database();
  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  /// Runs statements that take no parameters and return no rows (DDL, PRAGMA …).
  void exec(const std::string& sql);
  int64_t last_insert_rowid() const;
  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_; }
  /// Throws rlft::Error "<path>: <what>: <sqlite message>" for a failed call.
  [[noreturn]] void raise(const std::string& what) const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

class Statement {
 public:
  Statement(Database& db, const std::string& sql);
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& operator=(Statement&&) = delete;

  /// Binds by 1-based index; returns *this for chaining.
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
  Statement& bind(int index, double value);
  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
  Statement& bind(int index, const std::string& value) { return bind(index, std::string_view(value)); }
  Statement& bind_null(int index);
  Statement& bind_blob(int index, const void* data, std::size_t size);

  /// Steps once: true when a row is available, false when done.
  bool step();
  /// Steps to completion (for INSERT/UPDATE) and resets the statement for reuse.
  void run();
  void reset();

  int64_t column_int(int col) const;
  double column_double(int col) const;
  std::string column_text(int col) const;
  bool column_is_null(int col) const;

 private:
  Database* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string sql_;
};

/// BEGIN IMMEDIATE on construction; ROLLBACK on destruction unless commit() was called.
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Database& db_;
  bool done_ = false;
};

}  // namespace rlft::sqlite
