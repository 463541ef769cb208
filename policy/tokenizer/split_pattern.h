#pragma once
// Split patterns: where a pre-tokenizer's regex (or literal string) matches in a piece of text.
//
// Hugging Face `tokenizers` runs these regexes on Oniguruma. rlft recognises the regexes of the
// tokenizers it is used with (GPT-2's ByteLevel regex, Llama-3 / Qwen2's, DeepSeek-V3's three)
// and runs hand-written matchers for them, over code point classes measured on the reference
// (unicode.h); they are exact, and faster than a regex engine (Qwen2's regex on the test corpus:
// about 200 MB/s against PCRE2-JIT's 45 MB/s on the 2-core development VM). Any other regex
// goes to PCRE2 (UTF + UCP, JIT) — same syntax for what these files use, but PCRE2's Unicode
// tables are its own version's (PCRE2 10.42: Unicode 14), so code points assigned since may be
// classed differently there than by the reference.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rlft::tokenizer {

/// A byte range [begin, end) in a piece of text.
struct ByteRange {
  std::size_t begin = 0;
  std::size_t end = 0;
};

class SplitPattern {
 public:
  virtual ~SplitPattern() = default;
  /// Appends the non-overlapping matches in `text` (valid UTF-8), left to right, as
  /// Oniguruma's find_iter reports them, relative to `text`.
  virtual void find_matches(std::string_view text, std::vector<ByteRange>& out) const = 0;
  /// How this pattern runs: "literal", "pcre2", or the name of a hand-written matcher.
  virtual std::string engine() const = 0;
};

/// A Split pattern {"Regex": regex}. Throws rlft::Error when PCRE2 rejects the regex.
std::unique_ptr<SplitPattern> make_regex_pattern(const std::string& regex);
/// The same regex on PCRE2, even when a hand-written matcher exists (for tests and comparisons).
std::unique_ptr<SplitPattern> make_pcre2_pattern(const std::string& regex);
/// A Split pattern {"String": literal}: every non-overlapping occurrence.
std::unique_ptr<SplitPattern> make_literal_pattern(const std::string& literal);

/// The regex that the ByteLevel pre-tokenizer uses when `use_regex` is true (GPT-2's).
extern const char* const kGpt2Regex;
/// Qwen2's (and Qwen3's) pre-tokenizer regex: the trainer's default.
extern const char* const kQwen2Regex;

}  // namespace rlft::tokenizer
