#include "data/tasks/countdown.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <unordered_set>

#include "core/config.h"
#include "core/error.h"
#include "data/dataset_rng.h"

namespace rlft::data::tasks {
namespace {

/// A sub-expression of a solution being built: its value, its text and the precedence of
/// its top operator (1: + -, 2: * /, 3: a number), for minimal parentheses.
struct Node {
  int64_t value;
  std::string text;
  int prec;
};

std::string operand(const Node& n, int op_prec, bool right_of_noncommutative) {
  const bool parens = n.prec < op_prec || (right_of_noncommutative && n.prec == op_prec);
  return parens ? "(" + n.text + ")" : n.text;
}

/// Combines a op b when the result is a positive integer (the game's rule for intermediate
/// results); nullopt otherwise.
std::optional<Node> combine(const Node& a, char op, const Node& b) {
  int64_t v = 0;
  switch (op) {
    case '+':
      if (__builtin_add_overflow(a.value, b.value, &v)) return std::nullopt;
      return Node{v, operand(a, 1, false) + " + " + operand(b, 1, false), 1};
    case '-':
      if (a.value <= b.value) return std::nullopt;
      return Node{a.value - b.value, operand(a, 1, false) + " - " + operand(b, 1, true), 1};
    case '*':
      if (__builtin_mul_overflow(a.value, b.value, &v)) return std::nullopt;
      return Node{v, operand(a, 2, false) + " * " + operand(b, 2, false), 2};
    case '/':
      if (b.value <= 1 || a.value % b.value != 0) return std::nullopt;
      return Node{a.value / b.value, operand(a, 2, false) + " / " + operand(b, 2, true), 2};
  }
  return std::nullopt;
}

class CountdownSource : public ExampleSource {
 public:
  explicit CountdownSource(CountdownOptions o) : o_(std::move(o)) {}
  SourceData load(uint64_t seed) const override { return {generate_countdown(o_, seed), std::nullopt}; }
  std::string describe() const override {
    return fmt::format("countdown ({}-{} numbers in [{}, {}], targets in [{}, {}], {} examples)", o_.min_numbers,
                       o_.max_numbers, o_.min_number, o_.max_number, o_.min_target, o_.max_target, o_.n_examples);
  }

 private:
  CountdownOptions o_;
};

}  // namespace

CountdownOptions CountdownOptions::from_config(const ConfigView& c) {
  CountdownOptions o;
  o.n_examples = c.get<int64_t>("n_examples", o.n_examples);
  o.min_numbers = c.get<int>("min_numbers", o.min_numbers);
  o.max_numbers = c.get<int>("max_numbers", o.max_numbers);
  o.min_number = c.get<int64_t>("min_number", o.min_number);
  o.max_number = c.get<int64_t>("max_number", o.max_number);
  o.min_target = c.get<int64_t>("min_target", o.min_target);
  o.max_target = c.get<int64_t>("max_target", o.max_target);
  o.ops = c.get<std::vector<std::string>>("ops", o.ops);
  o.use_all = c.get<bool>("use_all", o.use_all);
  o.prompt_template = c.get<std::string>("prompt_template", o.prompt_template);
  o.completion_template = c.get<std::string>("completion_template", o.completion_template);
  return o;
}

void CountdownOptions::validate() const {
  RLFT_CHECK_OPTION(n_examples >= 1 && n_examples <= 10'000'000, "n_examples", n_examples, "must be in [1, 10000000]");
  RLFT_CHECK_OPTION(min_numbers >= 2 && min_numbers <= 6, "min_numbers", min_numbers, "must be in [2, 6]");
  RLFT_CHECK_OPTION(max_numbers >= min_numbers && max_numbers <= 6, "max_numbers", max_numbers,
                    "must be in [min_numbers, 6]");
  RLFT_CHECK_OPTION(min_number >= 1, "min_number", min_number, "must be >= 1");
  RLFT_CHECK_OPTION(max_number >= min_number && max_number <= 10000, "max_number", max_number,
                    "must be in [min_number, 10000]");
  RLFT_CHECK_OPTION(min_target >= 1, "min_target", min_target, "must be >= 1");
  RLFT_CHECK_OPTION(max_target >= min_target && max_target <= 1'000'000, "max_target", max_target,
                    "must be in [min_target, 1000000]");
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
  check_template("prompt_template", prompt_template, {"numbers", "target", "usage"});
  check_template("completion_template", completion_template, {"numbers", "target", "solution"});
}

std::vector<Example> generate_countdown(const CountdownOptions& o, uint64_t seed) {
  DataRng rng(seed, "countdown");
  std::vector<char> ops;
  for (const auto& op : o.ops) ops.push_back(op[0]);
  std::vector<Example> out;
  std::unordered_set<std::string> seen;
  const int64_t max_attempts = o.n_examples * 200 + 10000;
  int64_t attempts = 0;
  while (static_cast<int64_t>(out.size()) < o.n_examples) {
    RLFT_CHECK(++attempts <= max_attempts,
               "countdown: only {} distinct solvable problems after {} draws, {} asked for: widen the number or target "
               "range, or allow more operators",
               out.size(), max_attempts, o.n_examples);
    const int n = static_cast<int>(rng.uniform(o.min_numbers, o.max_numbers));
    std::vector<int64_t> numbers(n);
    for (auto& x : numbers) x = rng.uniform(o.min_number, o.max_number);

    // The solution: combine a random subset of the numbers pairwise until one value is left.
    const int k = o.use_all ? n : static_cast<int>(rng.uniform(2, n));
    std::vector<int64_t> order(n);
    for (int i = 0; i < n; ++i) order[i] = i;
    rng.shuffle(order);
    std::vector<Node> pool;
    for (int i = 0; i < k; ++i) pool.push_back({numbers[order[i]], std::to_string(numbers[order[i]]), 3});
    bool ok = true;
    while (pool.size() > 1 && ok) {
      const std::size_t i = rng.below(pool.size());
      std::size_t j = rng.below(pool.size() - 1);
      if (j >= i) ++j;
      std::optional<Node> r;
      for (int tries = 0; tries < 8 && !r; ++tries) r = combine(pool[i], ops[rng.below(ops.size())], pool[j]);
      if (!r) {
        ok = false;
        break;
      }
      pool[std::min(i, j)] = std::move(*r);
      pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(std::max(i, j)));
    }
    if (!ok) continue;
    const int64_t target = pool[0].value;
    if (target < o.min_target || target > o.max_target) continue;
    // A target that is one of the numbers is solved by writing it down, unless all must be used.
    if (!o.use_all && std::find(numbers.begin(), numbers.end(), target) != numbers.end()) continue;

    const std::string numbers_text = fmt::format("[{}]", fmt::join(numbers, ", "));
    const std::map<std::string, std::string> vars = {{"numbers", numbers_text},
                                                     {"target", std::to_string(target)},
                                                     {"usage", o.use_all ? "exactly once" : "at most once"},
                                                     {"solution", pool[0].text}};
    if (!seen.insert(numbers_text + "=" + std::to_string(target)).second) continue;

    Example ex;
    ex.id = fmt::format("countdown:{}", out.size());
    std::map<std::string, std::string> prompt_vars = vars;
    prompt_vars.erase("solution");
    ex.messages.push_back({"user", render_template(o.prompt_template, prompt_vars)});
    ex.reference = std::to_string(target);
    std::map<std::string, std::string> completion_vars = vars;
    completion_vars.erase("usage");
    ex.completion = render_template(o.completion_template, completion_vars);
    ex.meta = {{"numbers", numbers}, {"target", target}, {"solution", pool[0].text}, {"use_all", o.use_all}};
    out.push_back(std::move(ex));
  }
  return out;
}

std::unique_ptr<ExampleSource> make_countdown_source(const ConfigView& section) {
  return std::make_unique<CountdownSource>(read_options<CountdownOptions>(section));
}

}  // namespace rlft::data::tasks
