#pragma once
// Finding the answer in a completion, and reading a math answer as a value. Shared by the
// math_answer, exact_match and countdown rewards.
//
// Extraction never guesses past what a grader would accept: the content of every \boxed{…},
// every <answer>…</answer>, every "#### …" line is returned, so a caller can refuse a
// completion that hedges with two different answers.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rlft::reward {

/// The contents of every \boxed{…} (also \fbox{…}, and `\boxed 5` without braces), in order;
/// braces nest. An unclosed \boxed{ is ignored.
std::vector<std::string> extract_boxed(std::string_view text);
/// The contents of every <answer>…</answer>, in order. An unclosed <answer> is ignored.
std::vector<std::string> extract_answer_tags(std::string_view text);
/// The rest of the line after every "####" (GSM8K's answer marker), in order.
std::vector<std::string> extract_hash_answers(std::string_view text);
/// Every number-like span in order: integers, decimals, thousands-separated numbers
/// ("1,234"), fractions "a/b", \frac{a}{b} / \dfrac / \tfrac, with a leading minus.
std::vector<std::string> find_numbers(std::string_view text);
/// The last non-blank line, trimmed ("" when there is none).
std::string last_line(std::string_view text);

/// 128-bit integers for exact fractions (a GCC/Clang extension; __extension__ keeps
/// -Wpedantic quiet).
__extension__ typedef __int128 Int128;

/// A math answer's value: exact as a fraction when it fits, else approximate.
struct MathValue {
  bool exact = false;    ///< numerator/denominator hold the value exactly
  Int128 numerator = 0;  ///< reduced, denominator > 0
  Int128 denominator = 1;
  long double approx = 0;  ///< always set
};

/// Reads `s` as one number after light normalisation: surrounding $…$, \(…\), \[…\];
/// \left/\right, spacing commands, \text{…}/\mathrm{…} wrappers, a trailing unit word,
/// a trailing '.', '%' or '\%', '^\circ', a leading '$' or '\$', "x =" in front, the
/// Unicode minus. Accepts integers, decimals ("-.5", "3.50"), thousands separators
/// ("1,234,567", "1{,}234"), fractions ("3/4"), \frac{a}{b}, \dfrac, \tfrac, \frac12, and a
/// minus in front of any of them. nullopt when `s` is not one number ("1, 2", "x+1", "").
std::optional<MathValue> parse_math_value(std::string_view s);

/// Equal by value: exactly when both are exact, else within `relative_tolerance` (of the
/// larger magnitude, at least 1).
bool math_equal(const MathValue& a, const MathValue& b, double relative_tolerance);

/// ASCII whitespace trimmed from both ends.
std::string_view trim(std::string_view s);

}  // namespace rlft::reward
