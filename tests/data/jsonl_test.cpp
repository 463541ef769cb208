#include <doctest/doctest.h>

#include <fstream>

#include "data/jsonl.h"
#include "tests/support/temp_dir.h"

using namespace rlft;
using data::LineReader;

namespace {

std::vector<std::string> read_all(const std::string& path, std::size_t cap, std::vector<int64_t>* too_long = nullptr) {
  LineReader r(path, cap);
  std::vector<std::string> out;
  std::string line;
  for (;;) {
    auto s = r.next(line);
    if (s == LineReader::Status::kEnd) break;
    if (s == LineReader::Status::kTooLong) {
      if (too_long) too_long->push_back(r.line_number());
      out.push_back("<too long>");
      continue;
    }
    out.push_back(line);
  }
  return out;
}

}  // namespace

TEST_CASE("the line reader splits LF and CRLF lines and keeps a last line without newline") {
  test::TempDir dir;
  const auto path = dir.write("a.jsonl", "one\r\ntwo\n\nthree");
  CHECK(read_all(path, 100) == std::vector<std::string>{"one", "two", "", "three"});
}

TEST_CASE("the line reader reports an over-long line and continues after it") {
  test::TempDir dir;
  const auto path = dir.write("a.jsonl", "short\n" + std::string(5000, 'x') + "\nafter\n" + std::string(11, 'y'));
  std::vector<int64_t> long_lines;
  CHECK(read_all(path, 10, &long_lines) == std::vector<std::string>{"short", "<too long>", "after", "<too long>"});
  CHECK(long_lines == std::vector<int64_t>{2, 4});
}

TEST_CASE("a line of exactly the cap is accepted, one byte more is not") {
  test::TempDir dir;
  const auto path =
      dir.write("a.jsonl", std::string(10, 'a') + "\n" + std::string(10, 'b') + "\r\n" + std::string(11, 'c') + "\n");
  CHECK(read_all(path, 10) == std::vector<std::string>{std::string(10, 'a'), std::string(10, 'b'), "<too long>"});
}

TEST_CASE("lines crossing the reader's chunk boundary come back whole") {
  test::TempDir dir;
  std::string text;
  std::vector<std::string> expect;
  for (int i = 0; i < 300; ++i) {
    expect.push_back(std::string(700 + i, static_cast<char>('a' + i % 26)));
    text += expect.back() + "\n";
  }
  CHECK(read_all(dir.write("a.jsonl", text), 4096) == expect);
}

TEST_CASE("a missing file is an error naming it") {
  CHECK_THROWS_WITH_AS(LineReader("/nonexistent/x.jsonl"), doctest::Contains("/nonexistent/x.jsonl"), Error);
}

TEST_CASE("UTF-8 validation finds the first bad byte") {
  struct Row {
    std::string text;
    std::optional<std::size_t> bad;
  };
  const Row rows[] = {
      {"plain ascii", std::nullopt},
      {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", std::nullopt},  // é € 😀
      {"ab\xFF", 2},                                                // never valid
      {"\xC3", 0},                                                  // truncated
      {"x\xC0\xAF", 1},                                             // overlong '/'
      {"\xED\xA0\x80", 0},                                          // a surrogate
      {"\xF4\x90\x80\x80", 0},                                      // above U+10FFFF
      {"ok\x80", 2},                                                // a lone continuation byte
      {"\xE2\x82", 0},                                              // truncated 3-byte
  };
  for (const auto& r : rows) {
    CAPTURE(r.text);
    CHECK(data::find_invalid_utf8(r.text) == r.bad);
  }
}

TEST_CASE("malformed JSON is an error with line and column") {
  try {
    data::parse_json_line(R"({"prompt": "a", "chosen": })", "f.jsonl", 7);
    FAIL("no error");
  } catch (const data::InputError& e) {
    CHECK(e.line() == 7);
    CHECK(e.column() == 27);
    CHECK(std::string(e.what()).rfind("f.jsonl:7:27: malformed JSON:", 0) == 0);
  }
}

TEST_CASE("invalid UTF-8 in a line is an error with its column") {
  try {
    data::parse_json_line("{\"prompt\": \"a\xFF\"}", "f.jsonl", 3);
    FAIL("no error");
  } catch (const data::InputError& e) {
    CHECK(std::string(e.what()) == "f.jsonl:3:14: invalid UTF-8 (byte 0xFF)");
  }
}

TEST_CASE("dotted paths reach into nested objects") {
  const auto j = nlohmann::json::parse(R"({"a": {"b": {"c": 3}}, "x": 1})");
  REQUIRE(data::json_at(j, "a.b.c"));
  CHECK(*data::json_at(j, "a.b.c") == 3);
  CHECK(data::json_at(j, "a.b.d") == nullptr);
  CHECK(data::json_at(j, "x.y") == nullptr);
}
