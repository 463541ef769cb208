#include "policy/tokenizer/jinja/lexer.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "policy/tokenizer/jinja/pystr.h"

namespace rlft::tokenizer::jinja {

namespace {

bool lexer_is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool lexer_is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool lexer_is_name_char(char c) {
  return lexer_is_name_start(c) || lexer_is_digit(c);
}

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {
    line_starts_.push_back(0);
    for (std::size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    while (pos_ < src_.size()) lex_root();
    push(TokenType::kEof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  const std::string& src_;
  std::vector<std::size_t> line_starts_;
  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
  bool line_starting_ = true;

  void where(std::size_t offset, int& line, int& column) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    const std::size_t start = *std::prev(it);
    line = static_cast<int>(it - line_starts_.begin());
    column = static_cast<int>(pystr::length(std::string_view(src_).substr(start, offset - start))) + 1;
  }

  [[noreturn]] void fail(std::size_t offset, std::string message) const {
    SyntaxError e{std::move(message), 0, 0};
    where(offset, e.line, e.column);
    throw e;
  }

  Token& push(TokenType type, std::string value, std::size_t offset) {
    Token t{type, std::move(value)};
    where(offset, t.line, t.column);
    tokens_.push_back(std::move(t));
    return tokens_.back();
  }

  bool at(std::size_t p, const char* s) const { return src_.compare(p, std::strlen(s), s) == 0; }

  // Length of the Unicode whitespace run (Python's \s) at p.
  std::size_t space_run(std::size_t p) const {
    std::size_t q = p;
    while (q < src_.size()) {
      const auto b = static_cast<unsigned char>(src_[q]);
      const std::size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
      const std::u32string cp = pystr::decode(std::string_view(src_).substr(q, n));
      if (cp.empty() || !pystr::is_space(cp[0])) break;
      q += n;
    }
    return q - p;
  }

  bool all_space(std::string_view s) const {
    for (char32_t c : pystr::decode(s))
      if (!pystr::is_space(c)) return false;
    return true;
  }

  // Applies `-` stripping or lstrip_blocks to the text before a tag, then emits it.
  void emit_text(std::string text, std::size_t text_start, char sign, bool is_variable) {
    if (sign == '-') {
      text = pystr::strip(text, std::nullopt, false, true);
    } else if (sign != '+' && !is_variable) {
      const std::size_t nl = text.rfind('\n');
      const std::size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && l_pos < text.size() && all_space(std::string_view(text).substr(l_pos))) {
        text.resize(l_pos);
      }
    }
    if (!text.empty()) push(TokenType::kData, std::move(text), text_start);
  }

  // A {% raw %} opener at p ({%, optional sign, spaces, "raw", spaces, -%} or %}); returns
  // its length, 0 when there is none.
  std::size_t raw_opener(std::size_t p) const {
    std::size_t q = p + 2;
    if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
    q += space_run(q);
    if (!at(q, "raw")) return 0;
    q += 3;
    q += space_run(q);
    if (at(q, "-%}")) return q + 3 + space_run(q + 3) - p;
    if (at(q, "%}")) return q + 2 - p;
    return 0;
  }

  void lex_root() {
    std::size_t p = pos_;
    while (p + 1 < src_.size()) {
      if (src_[p] == '{' && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) break;
      ++p;
    }
    if (p + 1 >= src_.size()) {
      push(TokenType::kData, src_.substr(pos_), pos_);
      line_starting_ = src_.back() == '\n';
      pos_ = src_.size();
      return;
    }
    const char kind = src_[p + 1];
    const char sign = p + 2 < src_.size() && (src_[p + 2] == '-' || src_[p + 2] == '+') ? src_[p + 2] : 0;
    emit_text(src_.substr(pos_, p - pos_), pos_, sign, kind == '{');
    if (kind == '%') {
      if (const std::size_t n = raw_opener(p)) {
        line_starting_ = src_[p + n - 1] == '\n';
        pos_ = p + n;
        lex_raw(p);
        return;
      }
    }
    line_starting_ = false;
    pos_ = p + 2 + (sign ? 1 : 0);
    if (kind == '#') {
      lex_comment(p);
    } else if (kind == '%') {
      push(TokenType::kBlockBegin, "", p);
      lex_tag(false);
    } else {
      push(TokenType::kVariableBegin, "", p);
      lex_tag(true);
    }
  }

  void lex_comment(std::size_t open) {
    for (std::size_t p = pos_; p < src_.size(); ++p) {
      std::size_t end = 0;
      if (at(p, "+#}")) {
        end = p + 3;
      } else if (at(p, "-#}")) {
        end = p + 3 + space_run(p + 3);
      } else if (at(p, "#}")) {
        end = p + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
      }
      if (end) {
        line_starting_ = src_[end - 1] == '\n';
        pos_ = end;
        return;
      }
    }
    fail(open, "Missing end of comment tag");
  }

  void lex_raw(std::size_t open) {
    for (std::size_t p = pos_; p + 1 < src_.size(); ++p) {
      if (!at(p, "{%")) continue;
      std::size_t q = p + 2;
      const char sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : 0;
      if (sign) ++q;
      q += space_run(q);
      if (!at(q, "endraw")) continue;
      q += 6;
      q += space_run(q);
      std::size_t end = 0;
      if (at(q, "+%}")) {
        end = q + 3;
      } else if (at(q, "-%}")) {
        end = q + 3 + space_run(q + 3);
      } else if (at(q, "%}")) {
        end = q + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
      }
      if (!end) continue;
      emit_text(src_.substr(pos_, p - pos_), pos_, sign, false);
      line_starting_ = src_[end - 1] == '\n';
      pos_ = end;
      return;
    }
    fail(open, "Missing end of raw directive");
  }

  // Tokens inside {% %} or {{ }} up to the closing tag.
  void lex_tag(bool variable) {
    std::vector<char> balance;
    while (true) {
      if (pos_ >= src_.size())
        fail(src_.size(),
             variable ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'");
      if (balance.empty()) {
        std::size_t end = 0;
        if (variable) {
          if (at(pos_, "-}}")) {
            end = pos_ + 3 + space_run(pos_ + 3);
          } else if (at(pos_, "}}")) {
            end = pos_ + 2;
          }
        } else if (at(pos_, "+%}")) {
          end = pos_ + 3;
        } else if (at(pos_, "-%}")) {
          end = pos_ + 3 + space_run(pos_ + 3);
        } else if (at(pos_, "%}")) {
          end = pos_ + 2;
          if (end < src_.size() && src_[end] == '\n') ++end;
        }
        if (end) {
          push(variable ? TokenType::kVariableEnd : TokenType::kBlockEnd, "", pos_);
          line_starting_ = src_[end - 1] == '\n';
          pos_ = end;
          return;
        }
      }
      if (const std::size_t n = space_run(pos_)) {
        pos_ += n;
        continue;
      }
      if (lex_number() || lex_name() || lex_string()) continue;
      lex_operator(balance);
    }
  }

  // Digits with single underscores between them, at p; returns the end (p when none).
  std::size_t digit_run(std::size_t p) const {
    std::size_t q = p;
    if (q >= src_.size() || !lexer_is_digit(src_[q])) return p;
    while (q < src_.size()) {
      if (lexer_is_digit(src_[q])) {
        ++q;
      } else if (src_[q] == '_' && q + 1 < src_.size() && lexer_is_digit(src_[q + 1])) {
        ++q;
      } else {
        break;
      }
    }
    return q;
  }

  bool lex_number() {
    const std::size_t p = pos_;
    if (!lexer_is_digit(src_[p])) return false;
    // Float first (Jinja2's rule order): digits (.digits)? e[+-]?digits | digits .digits, not
    // right after a '.'.
    if (p == 0 || src_[p - 1] != '.') {
      const std::size_t int_end = digit_run(p);
      std::size_t q = int_end;
      bool has_frac = false;
      if (q < src_.size() && src_[q] == '.' && digit_run(q + 1) > q + 1) {
        q = digit_run(q + 1);
        has_frac = true;
      }
      std::size_t e_end = q;
      if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
        std::size_t r = q + 1;
        if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
        if (digit_run(r) > r) e_end = digit_run(r);
      }
      if (e_end > q || has_frac) {
        std::string text = src_.substr(p, e_end - p);
        text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
        Token& t = push(TokenType::kFloat, text, p);
        std::from_chars(text.data(), text.data() + text.size(), t.float_value);
        pos_ = e_end;
        return true;
      }
    }
    // Integers: 0b…, 0o…, 0x…, decimal.
    int base = 10;
    std::size_t q = p;
    if (src_[p] == '0' && p + 1 < src_.size()) {
      const char c = static_cast<char>(src_[p + 1] | 0x20);
      base = c == 'b' ? 2 : c == 'o' ? 8 : c == 'x' ? 16 : 10;
    }
    std::string digits;
    if (base != 10) {
      q = p + 2;
      auto ok = [&](char c) {
        if (base == 2) return c == '0' || c == '1';
        if (base == 8) return c >= '0' && c <= '7';
        return lexer_is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
      };
      while (q < src_.size()) {
        if (src_[q] == '_' && q + 1 < src_.size() && ok(src_[q + 1])) {
          q += 2;
          digits.push_back(src_[q - 1]);
        } else if (ok(src_[q])) {
          digits.push_back(src_[q++]);
        } else {
          break;
        }
      }
      if (digits.empty()) {
        base = 10;
        q = p;
      }
    }
    if (base == 10) {
      if (src_[p] == '0') {
        q = p + 1;
        while (q < src_.size() && (src_[q] == '0' || (src_[q] == '_' && q + 1 < src_.size() && src_[q + 1] == '0')))
          ++q;
        digits = "0";
      } else {
        q = digit_run(p);
        digits = src_.substr(p, q - p);
        digits.erase(std::remove(digits.begin(), digits.end(), '_'), digits.end());
      }
    }
    Token& t = push(TokenType::kInteger, src_.substr(p, q - p), p);
    const auto res = std::from_chars(digits.data(), digits.data() + digits.size(), t.int_value, base);
    if (res.ec != std::errc()) fail(p, fmt::format("the integer literal {} is too large", t.value));
    pos_ = q;
    return true;
  }

  bool lex_name() {
    if (!lexer_is_name_start(src_[pos_])) return false;
    std::size_t q = pos_;
    while (q < src_.size() && lexer_is_name_char(src_[q])) ++q;
    push(TokenType::kName, src_.substr(pos_, q - pos_), pos_);
    pos_ = q;
    return true;
  }

  bool lex_string() {
    const char quote = src_[pos_];
    if (quote != '\'' && quote != '"') return false;
    std::size_t q = pos_ + 1;
    while (q < src_.size() && src_[q] != quote) q += src_[q] == '\\' ? 2 : 1;
    if (q >= src_.size()) return false;  // not a string: the quote falls to the operator rule
    const std::string body = src_.substr(pos_ + 1, q - pos_ - 1);
    push(TokenType::kString, unescape(body, pos_), pos_);
    pos_ = q + 1;
    return true;
  }

  static int hex_value(char c) {
    if (lexer_is_digit(c)) return c - '0';
    c = static_cast<char>(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  }

  // Python's "unicode-escape" decoding of a literal's body, after the non-ASCII characters have
  // been written as \xNN, \uNNNN or \UNNNNNNNN ("backslashreplace"), as Jinja2 does.
  std::string unescape(const std::string& body, std::size_t offset) const {
    std::string ascii;  // the backslashreplace'd body
    for (char32_t c : pystr::decode(body)) {
      if (c < 0x80) {
        ascii.push_back(static_cast<char>(c));
      } else {
        ascii += c <= 0xFF     ? fmt::format("\\x{:02x}", static_cast<unsigned>(c))
                 : c <= 0xFFFF ? fmt::format("\\u{:04x}", static_cast<unsigned>(c))
                               : fmt::format("\\U{:08x}", static_cast<unsigned>(c));
      }
    }
    std::string out;
    for (std::size_t i = 0; i < ascii.size(); ++i) {
      if (ascii[i] != '\\' || i + 1 >= ascii.size()) {
        out.push_back(ascii[i]);
        continue;
      }
      const char e = ascii[++i];
      switch (e) {
        case '\n':
          break;
        case '\\':
        case '\'':
        case '"':
          out.push_back(e);
          break;
        case 'a':
          out.push_back('\a');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'v':
          out.push_back('\v');
          break;
        case 'x':
        case 'u':
        case 'U': {
          const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          char32_t cp = 0;
          for (int k = 0; k < n; ++k) {
            const int h = i + 1 + k < ascii.size() ? hex_value(ascii[i + 1 + k]) : -1;
            if (h < 0) fail(offset, fmt::format("truncated \\{}{} escape", e, std::string(n, 'X')));
            cp = cp * 16 + h;
          }
          if (cp > 0x10FFFF) fail(offset, "illegal Unicode character");
          if (cp >= 0xD800 && cp < 0xE000) fail(offset, "a surrogate escape in a string literal is not supported");
          i += n;
          pystr::append_utf8(out, cp);
          break;
        }
        case 'N':
          fail(offset, "\\N{...} escapes in string literals are not supported");
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = e - '0';
            for (int k = 0; k < 2 && i + 1 < ascii.size() && ascii[i + 1] >= '0' && ascii[i + 1] <= '7'; ++k)
              cp = cp * 8 + (ascii[++i] - '0');
            pystr::append_utf8(out, cp);
          } else {
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
    return out;
  }

  void lex_operator(std::vector<char>& balance) {
    static const char* const kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwo) {
      if (at(pos_, op)) {
        push(TokenType::kOperator, op, pos_);
        pos_ += 2;
        return;
      }
    }
    const char c = src_[pos_];
    if (!std::strchr("+-/*%~[](){}><=.:|,;", c) || c == 0) {
      const auto b = static_cast<unsigned char>(c);
      const std::size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
      fail(pos_, fmt::format("unexpected char {}", pystr::repr(src_.substr(pos_, n))));
    }
    if (c == '{' || c == '(' || c == '[') {
      balance.push_back(c == '{' ? '}' : c == '(' ? ')' : ']');
    } else if (c == '}' || c == ')' || c == ']') {
      if (balance.empty()) fail(pos_, fmt::format("unexpected '{}'", c));
      const char expected = balance.back();
      balance.pop_back();
      if (expected != c) fail(pos_, fmt::format("unexpected '{}', expected '{}'", c, expected));
    }
    push(TokenType::kOperator, std::string(1, c), pos_);
    ++pos_;
  }
};

}  // namespace

std::string normalize_source(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (std::size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::vector<Token> tokenize(const std::string& source) {
  return Lexer(source).run();
}

}  // namespace rlft::tokenizer::jinja
