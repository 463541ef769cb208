#pragma once
// Python's str methods on UTF-8 text. Python indexes strings by code point, so lengths,
// indices and slices here count code points; whitespace is str.isspace()'s; case mapping is
// Python's full mapping (pystr_table.inc, generated from the reference Python's str methods by
// scripts/reference/jinja_pystr_table.py).
// Text must be valid UTF-8 (templates and JSON inputs are checked on the way in).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rlft::tokenizer::jinja::pystr {

std::u32string decode(std::string_view s);
std::string encode(std::u32string_view s);
void append_utf8(std::string& out, char32_t cp);
/// True when `s` is valid UTF-8; otherwise `bad_offset` is the first bad byte.
bool valid_utf8(std::string_view s, std::size_t* bad_offset = nullptr);

/// str.isspace() of one code point (also what Python's re \s matches).
bool is_space(char32_t c);
/// str.isprintable() of one code point (what repr() leaves unescaped).
bool is_printable(char32_t c);
/// len(s).
int64_t length(std::string_view s);

/// strip/lstrip/rstrip: `chars` nullopt strips whitespace.
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
/// str.split / str.rsplit; `sep` nullopt splits on runs of whitespace; maxsplit < 0: no limit.
/// An empty `sep` is Python's ValueError (thrown as PyError).
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit,
                               bool from_right);
/// str.splitlines(keepends).
std::vector<std::string> splitlines(std::string_view s, bool keepends);
/// str.find / str.rfind with Python's optional start and end (code point indices, negative
/// from the end); -1 when absent.
int64_t find(std::string_view s, std::string_view sub, std::optional<int64_t> start, std::optional<int64_t> end,
             bool from_right);
/// str.count(sub).
int64_t count(std::string_view s, std::string_view sub);
/// str.replace(old, new, count) (count < 0: all).
std::string replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
/// str.title(): the first cased letter of each run title-cased, the rest lower-cased.
std::string title(std::string_view s);
/// str.capitalize(): the first character title-cased, the rest lower-cased.
std::string capitalize(std::string_view s);
/// str.isupper() / str.islower().
bool is_upper(std::string_view s);
bool is_lower(std::string_view s);

/// repr(s): quoted as Python quotes it, with Python's escapes.
std::string repr(std::string_view s);

}  // namespace rlft::tokenizer::jinja::pystr
