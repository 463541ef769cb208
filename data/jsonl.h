#pragma once
// JSONL input with bounded memory and errors that point at the byte: a line reader with a
// per-line cap, UTF-8 validation, and JSON parsing whose errors carry file:line:column.
//
//   data/prefs.jsonl:17:23: malformed JSON: syntax error while parsing object key …
//   data/prefs.jsonl:9: line is longer than 16777216 bytes (the limit; raise --max-line-bytes)
//
// Everything that reads user JSONL (datasets, preference imports) goes through here, so the
// same bad input gets the same message everywhere.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace rlft::data {

/// The default cap on one line: 16 MiB. A longer line is an error, never a 100 MB buffer.
constexpr std::size_t kDefaultMaxLineBytes = std::size_t{16} << 20;

/// An error in one line of an input file: "file:line[:column]: message". `line` and `column`
/// are 1-based (column 0 = unknown); `field` names the JSON field at fault ("" if none).
class InputError : public Error {
 public:
  InputError(std::string file, int64_t line, int64_t column, std::string field, std::string message);
  const std::string& file() const { return file_; }
  int64_t line() const { return line_; }
  int64_t column() const { return column_; }
  const std::string& field() const { return field_; }
  /// The message without the "file:line:column: " prefix.
  const std::string& message() const { return message_; }

 private:
  std::string file_;
  int64_t line_;
  int64_t column_;
  std::string field_;
  std::string message_;
};

/// Reads a file line by line (LF or CRLF). Memory stays within `max_line_bytes` plus a small
/// buffer whatever the file holds: an over-long line is reported (and skipped past) without
/// being kept.
class LineReader {
 public:
  /// Opens `path` ("-" = standard input). Throws rlft::Error naming the path when it cannot.
  LineReader(const std::string& path, std::size_t max_line_bytes = kDefaultMaxLineBytes);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  enum class Status { kLine, kTooLong, kEnd };
  /// Reads the next line into `line` (without its newline). kTooLong: the line exceeded the
  /// cap, `line` is empty and the reader has moved past it; line_number() still counts it.
  Status next(std::string& line);
  /// 1-based number of the line last returned.
  int64_t line_number() const { return line_number_; }
  std::size_t max_line_bytes() const { return max_line_bytes_; }
  const std::string& path() const { return path_; }

 private:
  bool fill();

  std::string path_;
  std::FILE* file_ = nullptr;
  bool owns_file_ = false;
  std::size_t max_line_bytes_;
  std::string buffer_;   // bytes read but not yet returned
  std::size_t pos_ = 0;  // start of unread bytes in buffer_
  bool eof_ = false;
  int64_t line_number_ = 0;
};

/// The byte offset of the first invalid UTF-8 sequence in `text` (overlongs, surrogates and
/// code points above U+10FFFF are invalid), or nullopt when it is all valid.
std::optional<std::size_t> find_invalid_utf8(std::string_view text);

/// Parses one JSONL line. Throws InputError "file:line:column: malformed JSON: …" or
/// "… invalid UTF-8 (byte 0xNN)" with the column of the offending byte.
nlohmann::json parse_json_line(std::string_view text, const std::string& file, int64_t line);

/// A JSON value's type in words, for "expected a string, got a number".
std::string json_type_name(const nlohmann::json& value);

/// The value at a dotted path ("meta.question"), or nullptr when any part is missing.
const nlohmann::json* json_at(const nlohmann::json& object, std::string_view dotted_path);

/// True when `text` has no characters other than whitespace.
bool is_blank(std::string_view text);

}  // namespace rlft::data
