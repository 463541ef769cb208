#include "data/tasks/arithmetic.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cctype>
#include <unordered_set>

#include "core/config.h"
#include "core/error.h"
#include "data/dataset_rng.h"

namespace rlft::data::tasks {
namespace {

int64_t pow10(int d) {
  int64_t p = 1;
  while (d-- > 0) p *= 10;
  return p;
}
/// The smallest and largest number with `d` digits (1 digit: 0..9).
int64_t lowest(int d) {
  return d == 1 ? 0 : pow10(d - 1);
}
int64_t highest(int d) {
  return pow10(d) - 1;
}

bool checked(char op, int64_t a, int64_t b, int64_t& out) {
  switch (op) {
    case '+':
      return !__builtin_add_overflow(a, b, &out);
    case '-':
      return !__builtin_sub_overflow(a, b, &out);
    case '*':
      return !__builtin_mul_overflow(a, b, &out);
    case '/':
      if (b == 0 || a % b != 0) return false;
      out = a / b;
      return true;
  }
  return false;
}

/// Evaluates numbers[0] ops[0] numbers[1] … with precedence, exactly.
std::optional<int64_t> evaluate(const std::vector<int64_t>& nums, const std::vector<char>& ops) {
  int64_t sum = 0, term = nums[0];
  char pending = '+';  // the additive operator in front of `term`
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (ops[i] == '*' || ops[i] == '/') {
      if (!checked(ops[i], term, nums[i + 1], term)) return std::nullopt;
    } else {
      if (!checked(pending, sum, term, sum)) return std::nullopt;
      pending = ops[i];
      term = nums[i + 1];
    }
  }
  if (!checked(pending, sum, term, sum)) return std::nullopt;
  return sum;
}

class ArithmeticSource : public ExampleSource {
 public:
  explicit ArithmeticSource(ArithmeticOptions o) : o_(std::move(o)) {}
  SourceData load(uint64_t seed) const override { return {generate_arithmetic(o_, seed), std::nullopt}; }
  std::string describe() const override {
    return fmt::format("arithmetic ({}-{} operands of {}-{} digits, ops {}, {} examples)", o_.min_operands,
                       o_.max_operands, o_.min_digits, o_.max_digits, fmt::join(o_.ops, ""), o_.n_examples);
  }

 private:
  ArithmeticOptions o_;
};

}  // namespace

ArithmeticOptions ArithmeticOptions::from_config(const ConfigView& c) {
  ArithmeticOptions o;
  o.n_examples = c.get<int64_t>("n_examples", o.n_examples);
  o.min_digits = c.get<int>("min_digits", o.min_digits);
  o.max_digits = c.get<int>("max_digits", o.max_digits);
  o.min_operands = c.get<int>("min_operands", o.min_operands);
  o.max_operands = c.get<int>("max_operands", o.max_operands);
  o.ops = c.get<std::vector<std::string>>("ops", o.ops);
  o.allow_negative = c.get<bool>("allow_negative", o.allow_negative);
  o.prompt_template = c.get<std::string>("prompt_template", o.prompt_template);
  o.completion_template = c.get<std::string>("completion_template", o.completion_template);
  o.demo_error_rate = c.get<double>("demo_error_rate", o.demo_error_rate);
  o.demo_error_max = c.get<int>("demo_error_max", o.demo_error_max);
  return o;
}

void ArithmeticOptions::validate() const {
  RLFT_CHECK_OPTION(n_examples >= 1 && n_examples <= 10'000'000, "n_examples", n_examples, "must be in [1, 10000000]");
  RLFT_CHECK_OPTION(min_digits >= 1 && min_digits <= 9, "min_digits", min_digits, "must be in [1, 9]");
  RLFT_CHECK_OPTION(max_digits >= min_digits && max_digits <= 9, "max_digits", max_digits,
                    "must be in [min_digits, 9]");
  RLFT_CHECK_OPTION(min_operands >= 2 && min_operands <= 8, "min_operands", min_operands, "must be in [2, 8]");
  RLFT_CHECK_OPTION(max_operands >= min_operands && max_operands <= 8, "max_operands", max_operands,
                    "must be in [min_operands, 8]");
  RLFT_CHECK_OPTION(demo_error_rate >= 0 && demo_error_rate <= 1, "demo_error_rate", demo_error_rate,
                    "must be in [0, 1]");
  RLFT_CHECK_OPTION(demo_error_max >= 1 && demo_error_max <= 1000, "demo_error_max", demo_error_max,
                    "must be in [1, 1000]");
  RLFT_CHECK_OPTION(!ops.empty(), "ops", "[]", "must list at least one of + - * /");
  for (const auto& op : ops)
    RLFT_CHECK_OPTION(op == "+" || op == "-" || op == "*" || op == "/", "ops", op, "may hold only + - * /");
  auto check_template = [&](const std::string& key, const std::string& t, const std::vector<std::string>& known) {
    std::string bad;
    try {
      for (const auto& p : template_placeholders(t))
        if (std::find(known.begin(), known.end(), p) == known.end())
          bad = fmt::format("unknown placeholder {{{}}} (known: {{{}}})", p, fmt::join(known, "}, {"));
    } catch (const Error& e) {
      bad = e.what();
    }
    RLFT_CHECK_OPTION(bad.empty(), key, t, "{}", bad);
  };
  check_template("prompt_template", prompt_template, {"expression"});
  check_template("completion_template", completion_template, {"expression", "answer"});
}

std::vector<Example> generate_arithmetic(const ArithmeticOptions& o, uint64_t seed) {
  DataRng rng(seed, "arithmetic");
  DataRng noise(seed, "arithmetic-demo-errors");
  std::vector<char> ops;
  for (const auto& op : o.ops) ops.push_back(op[0]);
  const bool only_division = ops.size() == 1 && ops[0] == '/';
  std::vector<Example> out;
  std::unordered_set<std::string> seen;
  const int64_t max_attempts = o.n_examples * 50 + 1000;
  int64_t attempts = 0;
  while (static_cast<int64_t>(out.size()) < o.n_examples) {
    RLFT_CHECK(++attempts <= max_attempts,
               "arithmetic: only {} distinct problems after {} draws, {} asked for: widen the digits, operands or ops",
               out.size(), max_attempts, o.n_examples);
    const int n = static_cast<int>(rng.uniform(o.min_operands, o.max_operands));
    std::vector<char> op(n - 1);
    for (int i = 0; i + 1 < n; ++i) {
      // Two divisions in a row could be inexact even with each divisor dividing its operand.
      do op[i] = ops[rng.below(ops.size())];
      while (!only_division && op[i] == '/' && i > 0 && op[i - 1] == '/');
    }
    if (only_division && n > 2) continue;  // a/b/c is not generated (see above)
    std::vector<int64_t> num(n);
    bool ok = true;
    for (int i = 0; i < n; ++i) {
      const int digits = static_cast<int>(rng.uniform(o.min_digits, o.max_digits));
      num[i] = rng.uniform(lowest(digits), highest(digits));
    }
    for (int i = 0; i + 1 < n && ok; ++i) {
      if (op[i] != '/') continue;
      // a / b with b | a: draw the divisor b, then a as a multiple of b in a's digit range.
      const int64_t b = std::max<int64_t>(1, num[i + 1]);
      const int64_t lo = lowest(o.min_digits), hi = highest(o.max_digits);
      const int64_t q_lo = (lo + b - 1) / b, q_hi = hi / b;
      if (q_lo > q_hi)
        ok = false;
      else
        num[i + 1] = b, num[i] = b * rng.uniform(q_lo, q_hi);
    }
    if (!ok) continue;
    const auto value = evaluate(num, op);
    if (!value || (!o.allow_negative && *value < 0)) continue;
    std::string expr = std::to_string(num[0]);
    for (int i = 0; i + 1 < n; ++i) expr += fmt::format(" {} {}", op[i], num[i + 1]);
    if (!seen.insert(expr).second) continue;

    Example ex;
    ex.id = fmt::format("arithmetic:{}", out.size());
    ex.messages.push_back({"user", render_template(o.prompt_template, {{"expression", expr}})});
    ex.reference = std::to_string(*value);
    std::string shown = ex.reference;
    if (o.demo_error_rate > 0 && static_cast<double>(noise.below(1'000'000)) < o.demo_error_rate * 1e6) {
      int64_t offset = noise.uniform(1, o.demo_error_max);
      if (noise.below(2) == 0) offset = -offset;
      shown = std::to_string(*value + offset);
    }
    ex.completion = render_template(o.completion_template, {{"expression", expr}, {"answer", shown}});
    ex.meta = {{"expression", expr}, {"answer", *value}};
    out.push_back(std::move(ex));
  }
  return out;
}

std::optional<int64_t> evaluate_arithmetic(const std::string& s) {
  std::vector<int64_t> nums;
  std::vector<char> ops;
  std::size_t i = 0;
  auto skip = [&] {
    while (i < s.size() && s[i] == ' ') ++i;
  };
  for (;;) {
    skip();
    bool neg = false;
    if (i < s.size() && s[i] == '-') neg = true, ++i;
    if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    int64_t v = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s[i] - '0', &v)) return std::nullopt;
      ++i;
    }
    nums.push_back(neg ? -v : v);
    skip();
    if (i == s.size()) break;
    const char c = s[i++];
    if (c != '+' && c != '-' && c != '*' && c != '/') return std::nullopt;
    ops.push_back(c);
  }
  return evaluate(nums, ops);
}

std::unique_ptr<ExampleSource> make_arithmetic_source(const ConfigView& section) {
  return std::make_unique<ArithmeticSource>(read_options<ArithmeticOptions>(section));
}

}  // namespace rlft::data::tasks
