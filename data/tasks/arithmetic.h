#pragma once
// Built-in task: multi-digit integer arithmetic ("What is 347 + 29 * 8?"), generated from a
// seed, for runs that need no download. The reference answer is the exact integer value
// under the usual precedence (* and / before + and -, left to right); division appears only
// where it is exact. Difficulty knobs: operand digits, number of operands, operators.
//
//   data:
//     source: arithmetic
//     arithmetic: { n_examples: 5000, min_digits: 2, max_digits: 3, ops: ["+", "-", "*"] }

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace rlft::data::tasks {

struct ArithmeticOptions {
  int64_t n_examples = 10000;                      ///< distinct problems generated (train + eval)
  int min_digits = 1;                              ///< digits of each operand, in [1, 9]
  int max_digits = 3;                              ///< in [min_digits, 9]
  int min_operands = 2;                            ///< operands per expression, in [2, 8]
  int max_operands = 2;                            ///< in [min_operands, 8]
  std::vector<std::string> ops = {"+", "-", "*"};  ///< any of + - * /
  bool allow_negative = true;                      ///< allow a negative result (false: such problems are redrawn)
  std::string prompt_template = "What is {expression}?";  ///< placeholders: {expression}
  std::string completion_template = "{answer}";           ///< the demonstration; placeholders: {expression}, {answer}
  /// Share of demonstrations whose answer is wrong (noisy SFT data; the reference stays right).
  double demo_error_rate = 0.0;
  /// A wrong demonstration's answer is off by a nonzero offset of at most this, in [1, 1000].
  int demo_error_max = 10;

  static ArithmeticOptions from_config(const ConfigView& section);
  void validate() const;  ///< throws rlft::OptionError naming the field
};

/// One problem: the expression text and its value.
struct ArithmeticProblem {
  std::string expression;  ///< "347 + 29 * 8"
  int64_t answer = 0;
};

/// `n_examples` distinct problems from `seed`. Throws rlft::Error when the knobs allow fewer
/// distinct problems than asked for. Each Example has reference = the answer, completion =
/// completion_template (with a wrong answer for a demo_error_rate share, drawn from its own
/// stream so the problems do not depend on it), meta = {"expression", "answer"}.
std::vector<Example> generate_arithmetic(const ArithmeticOptions& options, uint64_t seed);

/// The value of an expression of the form the generator writes (integers, + - * /, no
/// parentheses) with exact integer arithmetic; nullopt on overflow or inexact division.
std::optional<int64_t> evaluate_arithmetic(const std::string& expression);

std::unique_ptr<ExampleSource> make_arithmetic_source(const ConfigView& section);

}  // namespace rlft::data::tasks
