#include "data/jsonl.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace rlft::data {
namespace {

constexpr std::size_t kChunkBytes = 64 * 1024;

std::string location(const std::string& file, int64_t line, int64_t column) {
  if (line <= 0) return file;
  if (column <= 0) return fmt::format("{}:{}", file, line);
  return fmt::format("{}:{}:{}", file, line, column);
}

}  // namespace

InputError::InputError(std::string file, int64_t line, int64_t column, std::string field, std::string message)
    : Error(fmt::format("{}: {}", location(file, line, column), message)),
      file_(std::move(file)),
      line_(line),
      column_(column),
      field_(std::move(field)),
      message_(std::move(message)) {}

LineReader::LineReader(const std::string& path, std::size_t max_line_bytes)
    : path_(path), max_line_bytes_(max_line_bytes) {
  RLFT_CHECK(max_line_bytes_ > 0, "the line limit must be positive");
  if (path == "-") {
    file_ = stdin;
    path_ = "<stdin>";
  } else {
    file_ = std::fopen(path.c_str(), "rb");
    RLFT_CHECK(file_ != nullptr, "cannot open '{}': {}", path, std::strerror(errno));
    owns_file_ = true;
  }
}

LineReader::~LineReader() {
  if (owns_file_ && file_) std::fclose(file_);
}

bool LineReader::fill() {
  if (eof_) return false;
  // Drop the bytes already returned before growing the buffer.
  if (pos_ > 0) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  const std::size_t old = buffer_.size();
  buffer_.resize(old + kChunkBytes);
  const std::size_t n = std::fread(&buffer_[old], 1, kChunkBytes, file_);
  buffer_.resize(old + n);
  if (n < kChunkBytes) {
    RLFT_CHECK(!std::ferror(file_), "{}: read error: {}", path_, std::strerror(errno));
    eof_ = true;
  }
  return n > 0;
}

LineReader::Status LineReader::next(std::string& line) {
  line.clear();
  std::size_t scanned = pos_;  // bytes before this offset hold no newline
  for (;;) {
    const std::size_t nl = buffer_.find('\n', scanned);
    if (nl != std::string::npos) {
      ++line_number_;
      std::size_t end = nl;
      if (end > pos_ && buffer_[end - 1] == '\r') --end;
      if (end - pos_ > max_line_bytes_) {
        pos_ = nl + 1;
        return Status::kTooLong;
      }
      line.assign(buffer_, pos_, end - pos_);
      pos_ = nl + 1;
      return Status::kLine;
    }
    if (buffer_.size() - pos_ > max_line_bytes_ + 1) {
      // Over the cap with no newline in sight: skip to the end of this line, keeping nothing.
      ++line_number_;
      buffer_.clear();
      pos_ = 0;
      for (;;) {
        if (!fill()) return Status::kTooLong;
        const std::size_t skip_nl = buffer_.find('\n');
        if (skip_nl != std::string::npos) {
          pos_ = skip_nl + 1;
          return Status::kTooLong;
        }
        buffer_.clear();
      }
    }
    scanned = buffer_.size();
    const std::size_t consumed = pos_;
    if (!fill()) {
      if (buffer_.size() == pos_) return Status::kEnd;
      // The last line has no newline.
      ++line_number_;
      std::size_t end = buffer_.size();
      if (end > pos_ && buffer_[end - 1] == '\r') --end;
      if (end - pos_ > max_line_bytes_) {
        pos_ = buffer_.size();
        return Status::kTooLong;
      }
      line.assign(buffer_, pos_, end - pos_);
      pos_ = buffer_.size();
      return Status::kLine;
    }
    scanned -= consumed;  // fill() moved the unread bytes to the front
  }
}

std::optional<std::size_t> find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF)
      len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
      len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
      len = 4, cp = c & 0x07;
    else
      return i;  // a continuation byte, an overlong lead (C0, C1) or F5..FF
    if (i + len > n) return i;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return std::nullopt;
}

nlohmann::json parse_json_line(std::string_view text, const std::string& file, int64_t line) {
  if (auto bad = find_invalid_utf8(text))
    throw InputError(file, line, static_cast<int64_t>(*bad) + 1, "",
                     fmt::format("invalid UTF-8 (byte 0x{:02X})", static_cast<unsigned char>(text[*bad])));
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 7: <why>"; keep <why>.
    std::string why = e.what();
    const auto colon = why.find(": ", why.find("column"));
    if (colon != std::string::npos) why = why.substr(colon + 2);
    const int64_t column = e.byte == 0 ? 1 : static_cast<int64_t>(e.byte);
    throw InputError(file, line, column, "", "malformed JSON: " + why);
  }
}

std::string json_type_name(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return "a number";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::array:
      return "a list";
    case nlohmann::json::value_t::object:
      return "an object";
    default:
      return "an unsupported value";
  }
}

const nlohmann::json* json_at(const nlohmann::json& object, std::string_view dotted) {
  const nlohmann::json* cur = &object;
  while (!dotted.empty()) {
    const auto dot = dotted.find('.');
    const std::string part(dotted.substr(0, dot));
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(part);
    if (it == cur->end()) return nullptr;
    cur = &*it;
    dotted = dot == std::string_view::npos ? std::string_view() : dotted.substr(dot + 1);
  }
  return cur;
}

bool is_blank(std::string_view text) {
  for (char c : text)
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') return false;
  return true;
}

}  // namespace rlft::data
