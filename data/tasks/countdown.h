#pragma once
// Built-in task: Countdown — reach a target number from given numbers with + - * /, each
// number used at most once (or exactly once with use_all). Every problem is generated from a
// solution (a random expression over the numbers with positive integer intermediate
// results), so every problem is solvable; the solution travels in meta.solution.
//
//   data:
//     source: countdown
//     countdown: { n_examples: 5000, min_numbers: 3, max_numbers: 4, max_number: 99 }
//
// The safe expression evaluator the countdown reward uses lives here too (no eval, bounded
// length and depth, exact rational arithmetic), so the task's own tests check the solutions
// with the same code that scores completions.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.h"

namespace rlft::data::tasks {

struct CountdownOptions {
  int64_t n_examples = 10000;  ///< distinct problems generated (train + eval)
  int min_numbers = 3;         ///< numbers given per problem, in [2, 6]
  int max_numbers = 4;         ///< in [min_numbers, 6]
  int64_t min_number = 1;      ///< each given number is drawn from [min_number, max_number], >= 1
  int64_t max_number = 99;     ///< <= 10000
  int64_t min_target = 10;     ///< the target lies in [min_target, max_target], >= 1
  int64_t max_target = 100;    ///< <= 1000000
  std::vector<std::string> ops = {"+", "-", "*", "/"};  ///< operators the solution may use
  bool use_all = false;  ///< the solution uses every number (else a random subset of >= 2)
  /// The prompt; placeholders: {numbers}, {target}, {usage} ("at most once" / "exactly once").
  std::string prompt_template =
      "Using the numbers {numbers}, create an equation that equals {target}. You can use +, -, * and /, "
      "and each number {usage}. Put the final equation in <answer> </answer> tags.";
  std::string completion_template =
      "<answer>{solution}</answer>";  ///< the demonstration; placeholders: {numbers}, {target}, {solution}

  static CountdownOptions from_config(const ConfigView& section);
  void validate() const;  ///< throws rlft::OptionError naming the field
};

/// `n_examples` distinct problems from `seed`, each with meta {"numbers": [...],
/// "target": t, "solution": "…"} and reference = the target. Throws rlft::Error when the
/// knobs allow fewer distinct problems than asked for.
std::vector<Example> generate_countdown(const CountdownOptions& options, uint64_t seed);

std::unique_ptr<ExampleSource> make_countdown_source(const ConfigView& section);

// ---- the expression evaluator -------------------------------------------------------------

struct ExpressionLimits {
  std::size_t max_chars = 256;    ///< longer text is rejected unread
  int max_depth = 32;             ///< parenthesis nesting
  int max_numbers = 16;           ///< number literals
  bool integer_division = false;  ///< every division must come out even (the game's rule); else exact fractions
};

/// The outcome of evaluating one expression. `ok` false: `error` says why (for logs/tests).
struct ExpressionValue {
  bool ok = false;
  std::string error;
  int64_t numerator = 0;  ///< the value numerator/denominator, reduced, denominator > 0
  int64_t denominator = 1;
  std::vector<int64_t> numbers;  ///< the literals in order of appearance
  bool equals(int64_t v) const { return ok && denominator == 1 && numerator == v; }
};

/// Parses and evaluates `text`: non-negative integer literals, + - * / (also × ÷ · −),
/// parentheses, spaces. No unary minus, no decimals, no other characters. Arithmetic is
/// exact over the rationals with overflow checks; division by zero is an error.
ExpressionValue evaluate_expression(std::string_view text, const ExpressionLimits& limits = {});

/// True when every literal of `used` is one of `given`, each given number used at most once
/// (exactly once with `use_all`).
bool uses_numbers(const std::vector<int64_t>& used, const std::vector<int64_t>& given, bool use_all);

}  // namespace rlft::data::tasks
