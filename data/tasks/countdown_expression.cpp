// The countdown expression evaluator: a recursive-descent parser over a bounded input with
// exact rational arithmetic. It never executes anything: the grammar is
//   expr   := term   (('+' | '-') term)*
//   term   := factor (('*' | '/') factor)*
//   factor := NUMBER | '(' expr ')'
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "data/tasks/countdown.h"

namespace rlft::data::tasks {
namespace {

struct Q {
  int64_t n = 0, d = 1;
};

class Parser {
 public:
  Parser(std::string_view s, const ExpressionLimits& lim) : s_(s), lim_(lim) {}

  ExpressionValue run() {
    ExpressionValue out;
    if (s_.size() > lim_.max_chars) return fail(out, fmt::format("longer than {} characters", lim_.max_chars));
    Q v;
    if (!expr(v, 0)) return fail(out, error_);
    skip();
    if (pos_ != s_.size()) return fail(out, fmt::format("unexpected '{}' at offset {}", s_[pos_], pos_));
    out.ok = true;
    out.numerator = v.n;
    out.denominator = v.d;
    out.numbers = std::move(numbers_);
    return out;
  }

 private:
  static ExpressionValue& fail(ExpressionValue& out, std::string why) {
    out.ok = false;
    out.error = std::move(why);
    return out;
  }
  bool err(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }
  void skip() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool starts(std::string_view t) const { return s_.substr(pos_, t.size()) == t; }
  /// The operator at pos_ ('+', '-', '*', '/' or 0), and its length in bytes.
  char peek_op(std::size_t& len) {
    skip();
    if (pos_ >= s_.size()) return 0;
    const char c = s_[pos_];
    len = 1;
    if (c == '+' || c == '-' || c == '*' || c == '/') return c;
    len = 2;
    if (starts("\xC3\x97")) return '*';  // ×
    if (starts("\xC3\xB7")) return '/';  // ÷
    if (starts("\xC2\xB7")) return '*';  // ·
    len = 3;
    if (starts("\xE2\x88\x92")) return '-';  // − (U+2212)
    if (starts("\xE2\x8B\x85")) return '*';  // ⋅ (U+22C5)
    return 0;
  }

  static bool normalise(Q& q) {
    if (q.d == 0) return false;
    if (q.d < 0) {
      if (q.n == INT64_MIN || q.d == INT64_MIN) return false;
      q.n = -q.n, q.d = -q.d;
    }
    const int64_t g = std::gcd(q.n, q.d);
    if (g > 1) q.n /= g, q.d /= g;
    return true;
  }
  bool apply(char op, const Q& a, const Q& b, Q& out) {
    int64_t x, y;
    switch (op) {
      case '+':
      case '-':
        if (__builtin_mul_overflow(a.n, b.d, &x) || __builtin_mul_overflow(b.n, a.d, &y) ||
            (op == '+' ? __builtin_add_overflow(x, y, &out.n) : __builtin_sub_overflow(x, y, &out.n)) ||
            __builtin_mul_overflow(a.d, b.d, &out.d))
          return err("overflow");
        break;
      case '*':
        if (__builtin_mul_overflow(a.n, b.n, &out.n) || __builtin_mul_overflow(a.d, b.d, &out.d))
          return err("overflow");
        break;
      case '/':
        if (b.n == 0) return err("division by zero");
        if (__builtin_mul_overflow(a.n, b.d, &out.n) || __builtin_mul_overflow(a.d, b.n, &out.d))
          return err("overflow");
        break;
    }
    if (!normalise(out)) return err("overflow");
    if (op == '/' && lim_.integer_division && out.d != 1) return err("a division that does not come out even");
    return true;
  }

  bool expr(Q& v, int depth) {
    if (!term(v, depth)) return false;
    for (;;) {
      std::size_t len = 0;
      const char op = peek_op(len);
      if (op != '+' && op != '-') return true;
      pos_ += len;
      Q rhs, r;
      if (!term(rhs, depth) || !apply(op, v, rhs, r)) return false;
      v = r;
    }
  }
  bool term(Q& v, int depth) {
    if (!factor(v, depth)) return false;
    for (;;) {
      std::size_t len = 0;
      const char op = peek_op(len);
      if (op != '*' && op != '/') return true;
      pos_ += len;
      Q rhs, r;
      if (!factor(rhs, depth) || !apply(op, v, rhs, r)) return false;
      v = r;
    }
  }
  bool factor(Q& v, int depth) {
    skip();
    if (pos_ >= s_.size()) return err("unexpected end of expression");
    const char c = s_[pos_];
    if (c == '(') {
      if (depth + 1 > lim_.max_depth) return err(fmt::format("nested deeper than {}", lim_.max_depth));
      ++pos_;
      if (!expr(v, depth + 1)) return false;
      skip();
      if (pos_ >= s_.size() || s_[pos_] != ')') return err("missing ')'");
      ++pos_;
      return true;
    }
    if (c >= '0' && c <= '9') {
      int64_t n = 0;
      const std::size_t start = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        if (pos_ - start >= 18) return err("a number with more than 18 digits");
        n = n * 10 + (s_[pos_] - '0');
        ++pos_;
      }
      if (pos_ < s_.size() && (s_[pos_] == '.' || s_[pos_] == ',')) return err("only whole numbers are allowed");
      if (static_cast<int>(numbers_.size()) >= lim_.max_numbers)
        return err(fmt::format("more than {} numbers", lim_.max_numbers));
      numbers_.push_back(n);
      v = {n, 1};
      return true;
    }
    std::size_t len = 0;
    if (peek_op(len) == '-') return err("unary minus is not allowed");
    return err(fmt::format("unexpected '{}' at offset {}", c, pos_));
  }

  std::string_view s_;
  const ExpressionLimits& lim_;
  std::size_t pos_ = 0;
  std::vector<int64_t> numbers_;
  std::string error_;
};

}  // namespace

ExpressionValue evaluate_expression(std::string_view text, const ExpressionLimits& limits) {
  return Parser(text, limits).run();
}

bool uses_numbers(const std::vector<int64_t>& used, const std::vector<int64_t>& given, bool use_all) {
  std::map<int64_t, int> left;
  for (int64_t g : given) ++left[g];
  for (int64_t u : used)
    if (--left[u] < 0) return false;
  if (use_all)
    for (const auto& kv : left)
      if (kv.second != 0) return false;
  return true;
}

}  // namespace rlft::data::tasks
