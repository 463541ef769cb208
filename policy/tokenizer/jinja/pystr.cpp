#include "policy/tokenizer/jinja/pystr.h"

#include <fmt/format.h>

#include <algorithm>

#include "policy/tokenizer/unicode.h"

#include "policy/tokenizer/jinja/value.h"

namespace rlft::tokenizer::jinja::pystr {

namespace {

struct PystrCaseRun {
  char32_t first, last;
  int stride;
  int32_t delta;
};
struct PystrCaseSpecial {
  char32_t cp;
  char32_t upper[3], lower[3], title[3];
};
struct PystrRange {
  char32_t first, last;
};

#include "policy/tokenizer/jinja/pystr_table.inc"

template <std::size_t N>
bool pystr_in_ranges(const PystrRange (&ranges)[N], char32_t c) {
  auto it = std::upper_bound(std::begin(ranges), std::end(ranges), c,
                             [](char32_t v, const PystrRange& r) { return v < r.first; });
  return it != std::begin(ranges) && c <= std::prev(it)->last;
}

template <std::size_t N>
char32_t pystr_map_simple(const PystrCaseRun (&runs)[N], char32_t c) {
  auto it = std::upper_bound(std::begin(runs), std::end(runs), c,
                             [](char32_t v, const PystrCaseRun& r) { return v < r.first; });
  if (it == std::begin(runs)) return c;
  const PystrCaseRun& r = *std::prev(it);
  if (c > r.last || (c - r.first) % r.stride != 0) return c;
  return static_cast<char32_t>(static_cast<int64_t>(c) + r.delta);
}

const PystrCaseSpecial* pystr_special(char32_t c) {
  auto it = std::lower_bound(std::begin(kPystrSpecials), std::end(kPystrSpecials), c,
                             [](const PystrCaseSpecial& s, char32_t v) { return s.cp < v; });
  return it != std::end(kPystrSpecials) && it->cp == c ? &*it : nullptr;
}

enum class PystrCase { kUpper, kLower, kTitle };

void pystr_append_mapped(std::u32string& out, char32_t c, PystrCase which) {
  if (c < 0x80) {
    if (which == PystrCase::kLower) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    } else {
      out.push_back(c >= 'a' && c <= 'z' ? c - 32 : c);
    }
    return;
  }
  if (const PystrCaseSpecial* s = pystr_special(c)) {
    const char32_t* m = which == PystrCase::kUpper ? s->upper : which == PystrCase::kLower ? s->lower : s->title;
    for (int i = 0; i < 3 && m[i] != 0; ++i) out.push_back(m[i]);
    return;
  }
  switch (which) {
    case PystrCase::kUpper:
      out.push_back(pystr_map_simple(kPystrUpperRuns, c));
      break;
    case PystrCase::kLower:
      out.push_back(pystr_map_simple(kPystrLowerRuns, c));
      break;
    case PystrCase::kTitle:
      out.push_back(pystr_map_simple(kPystrTitleRuns, c));
      break;
  }
}

bool pystr_is_upper_cp(char32_t c) {
  return pystr_in_ranges(kPystrUppercase, c);
}
bool pystr_is_lower_cp(char32_t c) {
  return pystr_in_ranges(kPystrLowercase, c);
}
bool pystr_is_title_cp(char32_t c) {
  return pystr_in_ranges(kPystrTitlecase, c);
}
bool pystr_is_cased(char32_t c) {
  return pystr_is_upper_cp(c) || pystr_is_lower_cp(c) || pystr_is_title_cp(c);
}
bool pystr_is_case_ignorable(char32_t c) {
  return pystr_in_ranges(kPystrCaseIgnorable, c);
}

// Python's lower() of s[i], with the Final_Sigma rule for U+03A3.
void pystr_append_lower_at(std::u32string& out, const std::u32string& s, std::size_t i) {
  if (s[i] != 0x3A3) {
    pystr_append_mapped(out, s[i], PystrCase::kLower);
    return;
  }
  std::size_t j = i;
  char32_t c = 0;
  bool found = false;
  while (j > 0) {
    c = s[--j];
    if (!pystr_is_case_ignorable(c)) {
      found = true;
      break;
    }
  }
  bool final_sigma = found && pystr_is_cased(c);
  if (final_sigma && i + 1 < s.size()) {
    std::size_t k = i + 1;
    for (; k < s.size(); ++k) {
      c = s[k];
      if (!pystr_is_case_ignorable(c)) break;
    }
    final_sigma = k == s.size() || !pystr_is_cased(c);
  }
  out.push_back(final_sigma ? 0x3C2 : 0x3C3);
}

bool pystr_is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
         c == 0x2028 || c == 0x2029;
}

// Python's slice-index adjustment for find/count's start and end.
void pystr_adjust_bounds(int64_t len, std::optional<int64_t> start, std::optional<int64_t> end, int64_t& lo,
                         int64_t& hi) {
  lo = start.value_or(0);
  hi = end.value_or(len);
  if (lo < 0) lo = std::max<int64_t>(0, lo + len);
  if (hi < 0) hi = std::max<int64_t>(0, hi + len);
  hi = std::min(hi, len);
}

}  // namespace

std::u32string decode(std::string_view s) {
  // The engine's strings are valid UTF-8 (JSON text, template source): unicode::decode's input.
  std::u32string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) out.push_back(unicode::decode(s.data(), i));
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  unicode::append_utf8(out, static_cast<uint32_t>(cp));
}

std::string encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

bool valid_utf8(std::string_view s, std::size_t* bad_offset) {
  const auto bad = unicode::find_invalid_utf8(s);
  if (bad && bad_offset) *bad_offset = *bad;
  return !bad;
}

bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_printable(char32_t c) {
  if (c < 0x80) return c >= 0x20 && c < 0x7F;
  return !pystr_in_ranges(kPystrNotPrintable, c);
}

int64_t length(std::string_view s) {
  int64_t n = 0;
  for (char ch : s) n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  return n;
}

std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  const std::u32string u = decode(s);
  const std::u32string set = chars ? decode(*chars) : std::u32string();
  auto strippable = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : is_space(c); };
  std::size_t b = 0, e = u.size();
  if (left)
    while (b < e && strippable(u[b])) ++b;
  if (right)
    while (e > b && strippable(u[e - 1])) --e;
  return encode(std::u32string_view(u).substr(b, e - b));
}

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit,
                               bool from_right) {
  std::vector<std::string> out;
  if (maxsplit < 0) maxsplit = INT64_MAX;
  if (!sep) {
    const std::u32string u = decode(s);
    const std::size_t n = u.size();
    if (!from_right) {
      std::size_t i = 0;
      while (maxsplit-- > 0) {
        while (i < n && is_space(u[i])) ++i;
        if (i == n) break;
        const std::size_t j = i++;
        while (i < n && !is_space(u[i])) ++i;
        out.push_back(encode(std::u32string_view(u).substr(j, i - j)));
      }
      if (i < n) {
        while (i < n && is_space(u[i])) ++i;
        if (i != n) out.push_back(encode(std::u32string_view(u).substr(i)));
      }
    } else {
      std::size_t i = n;  // one past the current position
      while (maxsplit-- > 0) {
        while (i > 0 && is_space(u[i - 1])) --i;
        if (i == 0) break;
        const std::size_t j = i--;
        while (i > 0 && !is_space(u[i - 1])) --i;
        out.push_back(encode(std::u32string_view(u).substr(i, j - i)));
      }
      if (i > 0) {
        while (i > 0 && is_space(u[i - 1])) --i;
        if (i != 0) out.push_back(encode(std::u32string_view(u).substr(0, i)));
      }
      std::reverse(out.begin(), out.end());
    }
    return out;
  }
  if (sep->empty()) throw_py("ValueError", "empty separator");
  if (!from_right) {
    std::size_t pos = 0;
    while (maxsplit-- > 0) {
      const std::size_t hit = s.find(*sep, pos);
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, hit - pos));
      pos = hit + sep->size();
    }
    out.emplace_back(s.substr(pos));
  } else {
    std::size_t end = s.size();
    while (maxsplit-- > 0 && end >= sep->size()) {
      const std::size_t hit = s.rfind(*sep, end - sep->size());
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
      end = hit;
    }
    out.emplace_back(s.substr(0, end));
    std::reverse(out.begin(), out.end());
  }
  return out;
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
  const std::u32string u = decode(s);
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < u.size()) {
    std::size_t j = i;
    while (j < u.size() && !pystr_is_line_break(u[j])) ++j;
    std::size_t eol = j;
    if (j < u.size()) {
      eol = (u[j] == '\r' && j + 1 < u.size() && u[j + 1] == '\n') ? j + 2 : j + 1;
    }
    out.push_back(encode(std::u32string_view(u).substr(i, (keepends ? eol : j) - i)));
    i = eol;
  }
  return out;
}

int64_t find(std::string_view s, std::string_view sub, std::optional<int64_t> start, std::optional<int64_t> end,
             bool from_right) {
  const std::u32string u = decode(s);
  const std::u32string w = decode(sub);
  const auto len = static_cast<int64_t>(u.size());
  int64_t lo, hi;
  pystr_adjust_bounds(len, start, end, lo, hi);
  const auto m = static_cast<int64_t>(w.size());
  if (lo > len || hi - lo < m) return -1;
  const std::u32string_view hay = std::u32string_view(u).substr(lo, hi - lo);
  const std::size_t hit = from_right ? hay.rfind(w) : hay.find(w);
  return hit == std::u32string_view::npos ? -1 : lo + static_cast<int64_t>(hit);
}

int64_t count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return length(s) + 1;
  int64_t n = 0;
  for (std::size_t pos = s.find(sub); pos != std::string_view::npos; pos = s.find(sub, pos + sub.size())) ++n;
  return n;
}

std::string replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count) {
  if (count < 0) count = INT64_MAX;
  std::string out;
  if (old.empty()) {
    const std::u32string u = decode(s);
    for (char32_t c : u) {
      if (count > 0) {
        out += repl;
        --count;
      }
      append_utf8(out, c);
    }
    if (count > 0) out += repl;
    return out;
  }
  std::size_t pos = 0;
  while (count-- > 0) {
    const std::size_t hit = s.find(old, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(repl);
    pos = hit + old.size();
  }
  out.append(s.substr(pos));
  return out;
}

std::string upper(std::string_view s) {
  std::u32string out;
  for (char32_t c : decode(s)) pystr_append_mapped(out, c, PystrCase::kUpper);
  return encode(out);
}

std::string lower(std::string_view s) {
  const std::u32string u = decode(s);
  std::u32string out;
  for (std::size_t i = 0; i < u.size(); ++i) pystr_append_lower_at(out, u, i);
  return encode(out);
}

std::string title(std::string_view s) {
  const std::u32string u = decode(s);
  std::u32string out;
  bool previous_is_cased = false;
  for (std::size_t i = 0; i < u.size(); ++i) {
    if (previous_is_cased) {
      pystr_append_lower_at(out, u, i);
    } else {
      pystr_append_mapped(out, u[i], PystrCase::kTitle);
    }
    previous_is_cased = pystr_is_cased(u[i]);
  }
  return encode(out);
}

std::string capitalize(std::string_view s) {
  const std::u32string u = decode(s);
  std::u32string out;
  for (std::size_t i = 0; i < u.size(); ++i) {
    if (i == 0) {
      pystr_append_mapped(out, u[i], PystrCase::kTitle);
    } else {
      pystr_append_lower_at(out, u, i);
    }
  }
  return encode(out);
}

bool is_upper(std::string_view s) {
  bool cased = false;
  for (char32_t c : decode(s)) {
    if (pystr_is_lower_cp(c) || pystr_is_title_cp(c)) return false;
    if (!cased && pystr_is_upper_cp(c)) cased = true;
  }
  return cased;
}

bool is_lower(std::string_view s) {
  bool cased = false;
  for (char32_t c : decode(s)) {
    if (pystr_is_upper_cp(c) || pystr_is_title_cp(c)) return false;
    if (!cased && pystr_is_lower_cp(c)) cased = true;
  }
  return cased;
}

std::string repr(std::string_view s) {
  const std::u32string u = decode(s);
  const bool has_single = u.find(U'\'') != std::u32string::npos;
  const bool has_double = u.find(U'"') != std::u32string::npos;
  const char32_t quote = has_single && !has_double ? U'"' : U'\'';
  std::string out(1, static_cast<char>(quote));
  for (char32_t c : u) {
    if (c == quote || c == U'\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == U'\t') {
      out += "\\t";
    } else if (c == U'\n') {
      out += "\\n";
    } else if (c == U'\r') {
      out += "\\r";
    } else if (is_printable(c)) {
      append_utf8(out, c);
    } else {
      const auto u = static_cast<unsigned>(c);
      out += c <= 0xFF     ? fmt::format("\\x{:02x}", u)
             : c <= 0xFFFF ? fmt::format("\\u{:04x}", u)
                           : fmt::format("\\U{:08x}", u);
    }
  }
  out.push_back(static_cast<char>(quote));
  return out;
}

}  // namespace rlft::tokenizer::jinja::pystr
