#include "reward/rules/answer.h"

#include <cmath>
#include <cstdlib>

namespace rlft::reward {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool starts_with(std::string_view s, std::size_t pos, std::string_view prefix) {
  return s.substr(pos, prefix.size()) == prefix;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
}

/// The index just past the '}' matching the '{' at `open`, or npos.
std::size_t match_brace(std::string_view s, std::size_t open) {
  int depth = 0;
  for (std::size_t i = open; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) {
      ++i;  // an escaped brace does not nest
      continue;
    }
    if (s[i] == '{')
      ++depth;
    else if (s[i] == '}' && --depth == 0)
      return i + 1;
  }
  return std::string_view::npos;
}

Int128 gcd128(Int128 a, Int128 b) {
  if (a < 0) a = -a;
  if (b < 0) b = -b;
  while (b != 0) {
    const Int128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

void reduce(MathValue& v) {
  if (!v.exact) return;
  if (v.denominator < 0) v.numerator = -v.numerator, v.denominator = -v.denominator;
  const Int128 g = gcd128(v.numerator, v.denominator);
  if (g > 1) v.numerator /= g, v.denominator /= g;
}

/// Parses an unsigned plain decimal at `pos` ("12", "1,234.5", ".5"); advances `pos`.
std::optional<MathValue> plain_number(std::string_view s, std::size_t& pos) {
  std::size_t i = pos;
  std::string digits;  // without separators
  std::size_t int_digits = 0;
  while (i < s.size() && is_digit(s[i])) digits += s[i++], ++int_digits;
  // Thousands separators: only after a first group of 1-3 digits, then groups of exactly 3.
  if (int_digits >= 1 && int_digits <= 3) {
    std::size_t j = i;
    std::string groups;
    while (j + 3 < s.size() + 0 && s[j] == ',' && is_digit(s[j + 1]) && is_digit(s[j + 2]) && is_digit(s[j + 3]) &&
           (j + 4 >= s.size() || !is_digit(s[j + 4]))) {
      groups.append(s.substr(j + 1, 3));
      j += 4;
    }
    if (!groups.empty()) {
      digits += groups;
      int_digits += groups.size();
      i = j;
    }
  }
  std::size_t frac_digits = 0;
  if (i + 1 < s.size() + 0 && s[i] == '.' && is_digit(s[i + 1])) {
    ++i;
    while (i < s.size() && is_digit(s[i])) digits += s[i++], ++frac_digits;
  }
  if (digits.empty()) return std::nullopt;
  MathValue v;
  const std::string text = digits.substr(0, int_digits) + (frac_digits ? "." + digits.substr(int_digits) : "");
  v.approx = std::strtold(text.c_str(), nullptr);
  if (digits.size() <= 36) {
    v.exact = true;
    for (char c : digits) v.numerator = v.numerator * 10 + (c - '0');
    v.denominator = 1;
    for (std::size_t k = 0; k < frac_digits; ++k) v.denominator *= 10;
    reduce(v);
  }
  pos = i;
  return v;
}

std::optional<MathValue> divide(const MathValue& a, const MathValue& b) {
  if (b.approx == 0 && (!b.exact || b.numerator == 0)) return std::nullopt;
  MathValue v;
  v.approx = a.approx / b.approx;
  Int128 n = 0, d = 0;
  if (a.exact && b.exact && !__builtin_mul_overflow(a.numerator, b.denominator, &n) &&
      !__builtin_mul_overflow(a.denominator, b.numerator, &d)) {
    v.exact = true;
    v.numerator = n;
    v.denominator = d;
    reduce(v);
  }
  return v;
}

std::optional<MathValue> signed_value(std::string_view s, std::size_t& pos, bool allow_spaced_fraction);

/// A \frac argument: "{…}" holding one signed number, or a single digit (\frac12).
std::optional<MathValue> frac_argument(std::string_view s, std::size_t& pos) {
  while (pos < s.size() && is_space(s[pos])) ++pos;
  if (pos < s.size() && is_digit(s[pos])) {
    MathValue v;
    v.exact = true;
    v.numerator = s[pos] - '0';
    v.approx = static_cast<long double>(s[pos] - '0');
    ++pos;
    return v;
  }
  if (pos >= s.size() || s[pos] != '{') return std::nullopt;
  const std::size_t end = match_brace(s, pos);
  if (end == std::string_view::npos) return std::nullopt;
  const std::string_view inner = trim(s.substr(pos + 1, end - pos - 2));
  std::size_t k = 0;
  auto v = signed_value(inner, k, true);
  if (!v || k != inner.size()) return std::nullopt;
  pos = end;
  return v;
}

/// An unsigned number at `pos`: \frac{a}{b} (also \dfrac, \tfrac) or a plain decimal,
/// optionally followed by "/ b".
std::optional<MathValue> unsigned_value(std::string_view s, std::size_t& pos, bool allow_spaced_fraction) {
  std::optional<MathValue> v;
  std::size_t i = pos;
  for (std::string_view cmd : {"\\frac", "\\dfrac", "\\tfrac"}) {
    if (!starts_with(s, i, cmd)) continue;
    i += cmd.size();
    auto a = frac_argument(s, i);
    if (!a) return std::nullopt;
    auto b = frac_argument(s, i);
    if (!b) return std::nullopt;
    v = divide(*a, *b);
    if (!v) return std::nullopt;
    pos = i;
    return v;
  }
  v = plain_number(s, i);
  if (!v) return std::nullopt;
  // "a/b", with spaces around '/' only where the caller allows them (a whole answer, not prose).
  std::size_t j = i;
  if (allow_spaced_fraction)
    while (j < s.size() && is_space(s[j])) ++j;
  if (j < s.size() && s[j] == '/') {
    std::size_t k = j + 1;
    if (allow_spaced_fraction)
      while (k < s.size() && is_space(s[k])) ++k;
    auto b = plain_number(s, k);
    if (b) {
      auto q = divide(*v, *b);
      if (!q) return std::nullopt;
      pos = k;
      return q;
    }
  }
  pos = i;
  return v;
}

std::optional<MathValue> signed_value(std::string_view s, std::size_t& pos, bool allow_spaced_fraction) {
  std::size_t i = pos;
  bool negative = false;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) {
    negative = s[i] == '-';
    ++i;
    while (i < s.size() && is_space(s[i])) ++i;
  }
  auto v = unsigned_value(s, i, allow_spaced_fraction);
  if (!v) return std::nullopt;
  if (negative) v->numerator = -v->numerator, v->approx = -v->approx;
  pos = i;
  return v;
}

/// Replaces every \cmd{X} with X.
void unwrap_command(std::string& s, std::string_view cmd) {
  std::size_t pos;
  while ((pos = s.find(cmd)) != std::string::npos) {
    std::size_t open = pos + cmd.size();
    if (open >= s.size() || s[open] != '{') {
      s.erase(pos, cmd.size());
      continue;
    }
    const std::size_t end = match_brace(s, open);
    if (end == std::string::npos) return;
    const std::string inner = s.substr(open + 1, end - open - 2);
    s.replace(pos, end - pos, " " + inner + " ");
  }
}

std::string normalise(std::string_view in) {
  std::string s(trim(in));
  replace_all(s, "\xE2\x88\x92", "-");  // − (U+2212)
  for (bool changed = true; changed;) {
    changed = false;
    const std::string_view t = trim(s);
    for (auto [open, close] :
         {std::pair<std::string_view, std::string_view>{"$$", "$$"}, {"$", "$"}, {"\\(", "\\)"}, {"\\[", "\\]"}}) {
      if (t.size() >= open.size() + close.size() && t.substr(0, open.size()) == open &&
          t.substr(t.size() - close.size()) == close) {
        s = std::string(t.substr(open.size(), t.size() - open.size() - close.size()));
        changed = true;
        break;
      }
    }
  }
  for (std::string_view cmd : {"\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "\\displaystyle"})
    replace_all(s, cmd, " ");
  replace_all(s, "~", " ");
  replace_all(s, "{,}", ",");
  for (std::string_view cmd : {"\\textbf", "\\text", "\\mathrm", "\\mbox", "\\mathbf"}) unwrap_command(s, cmd);
  for (std::string_view unit : {"^{\\circ}", "^\\circ", "\xC2\xB0", "\\%", "%"}) replace_all(s, unit, " ");
  std::string_view t = trim(s);
  // A leading currency sign and a trailing full stop.
  if (t.substr(0, 2) == "\\$")
    t.remove_prefix(2);
  else if (!t.empty() && t[0] == '$')
    t.remove_prefix(1);
  while (!t.empty() && t.back() == '.') t.remove_suffix(1);
  t = trim(t);
  // "x = 5", "n=5": a name and '=' in front.
  std::size_t k = 0;
  while (k < t.size() && (is_alpha(t[k]) || (k > 0 && (is_digit(t[k]) || t[k] == '_')))) ++k;
  if (k > 0) {
    std::size_t e = k;
    while (e < t.size() && is_space(t[e])) ++e;
    if (e < t.size() && t[e] == '=') t = trim(t.substr(e + 1));
  }
  return std::string(t);
}

}  // namespace

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string> extract_boxed(std::string_view text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t boxed = text.find("\\boxed", pos);
    const std::size_t fbox = text.find("\\fbox", pos);
    const std::size_t at = std::min(boxed, fbox);
    if (at == std::string_view::npos) break;
    std::size_t i = at + (at == boxed ? 6 : 5);
    if (i < text.size() && is_alpha(text[i])) {  // \boxedx is another command
      pos = i;
      continue;
    }
    while (i < text.size() && is_space(text[i]) && text[i] != '\n') ++i;
    if (i < text.size() && text[i] == '{') {
      const std::size_t end = match_brace(text, i);
      if (end == std::string_view::npos) break;
      out.emplace_back(text.substr(i + 1, end - i - 2));
      pos = end;
    } else if (i > at + 5 && i < text.size() && is_space(text[i - 1])) {
      std::size_t e = i;  // \boxed 5: one token
      while (e < text.size() && !is_space(text[e]) && text[e] != '$') ++e;
      if (e > i) out.emplace_back(text.substr(i, e - i));
      pos = e;
    } else {
      pos = i;
    }
  }
  return out;
}

std::vector<std::string> extract_answer_tags(std::string_view text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t open = text.find("<answer>", pos);
    if (open == std::string_view::npos) break;
    const std::size_t close = text.find("</answer>", open + 8);
    if (close == std::string_view::npos) break;
    out.emplace_back(text.substr(open + 8, close - open - 8));
    pos = close + 9;
  }
  return out;
}

std::vector<std::string> extract_hash_answers(std::string_view text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = text.find("####", pos)) != std::string_view::npos) {
    std::size_t i = pos + 4;
    while (i < text.size() && text[i] == '#') ++i;
    const std::size_t eol = std::min(text.find('\n', i), text.size());
    const std::string_view rest = trim(text.substr(i, eol - i));
    // A markdown heading ("#### Step 1") is not an answer: the answer starts like a number.
    if (!rest.empty() && (is_digit(rest[0]) || rest[0] == '-' || rest[0] == '$' || rest[0] == '\\' || rest[0] == '.' ||
                          starts_with(rest, 0, "\xE2\x88\x92")))
      out.emplace_back(rest);
    pos = eol;
  }
  return out;
}

std::vector<std::string> find_numbers(std::string_view text) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    const bool frac = c == '\\' && (starts_with(text, i, "\\frac") || starts_with(text, i, "\\dfrac") ||
                                    starts_with(text, i, "\\tfrac"));
    const bool minus_ok = i == 0 || !(is_digit(text[i - 1]) || is_alpha(text[i - 1]) || text[i - 1] == ')');
    const bool starts = is_digit(c) || frac || (c == '.' && i + 1 < text.size() && is_digit(text[i + 1])) ||
                        (c == '-' && minus_ok && i + 1 < text.size() &&
                         (is_digit(text[i + 1]) || text[i + 1] == '.' || text[i + 1] == '\\'));
    if (!starts) {
      ++i;
      continue;
    }
    std::size_t end = i;
    if (c == '-') {
      ++end;
      if (unsigned_value(text, end, false))
        out.emplace_back(text.substr(i, end - i));
      else
        end = i + 1;
    } else if (unsigned_value(text, end, false)) {
      out.emplace_back(text.substr(i, end - i));
    } else {
      end = i + 1;
    }
    i = std::max(end, i + 1);
  }
  return out;
}

std::string last_line(std::string_view text) {
  text = trim(text);
  const std::size_t nl = text.rfind('\n');
  return std::string(trim(nl == std::string_view::npos ? text : text.substr(nl + 1)));
}

std::optional<MathValue> parse_math_value(std::string_view input) {
  const std::string s = normalise(input);
  if (s.empty()) return std::nullopt;
  std::size_t pos = 0;
  auto v = signed_value(s, pos, /*allow_spaced_fraction=*/true);
  if (!v) return std::nullopt;
  // What follows may only be a unit word or two ("5 dollars", "12 cm").
  for (std::size_t i = pos; i < s.size(); ++i)
    if (!is_alpha(s[i]) && !is_space(s[i])) return std::nullopt;
  if (pos < s.size() && !is_space(s[pos])) return std::nullopt;  // "5x" is not a number
  return v;
}

bool math_equal(const MathValue& a, const MathValue& b, double relative_tolerance) {
  if (a.exact && b.exact) return a.numerator == b.numerator && a.denominator == b.denominator;
  const long double scale = std::max<long double>(1.0L, std::max(std::fabs(a.approx), std::fabs(b.approx)));
  return std::fabs(a.approx - b.approx) <= static_cast<long double>(relative_tolerance) * scale;
}

}  // namespace rlft::reward
