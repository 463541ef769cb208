#pragma once
// Regular expressions for rewards (format patterns, blocklists): PCRE2 in UTF mode, safe on
// what a policy writes — invalid UTF-8 in a completion is matched around, never an error,
// and a pattern that backtracks catastrophically hits a match limit and counts as no match
// rather than stalling a training step.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rlft::reward {

struct RegexOptions {
  bool case_insensitive = false;
  bool dotall = true;           ///< '.' also matches a newline (completions span lines)
  bool multiline = false;       ///< '^' and '$' match at every line
  bool unicode_classes = true;  ///< \w, \b, \d follow Unicode (PCRE2_UCP)
};

class Regex {
 public:
  /// Compiles `pattern`. Throws rlft::Error "…at offset N: <PCRE2's reason>" when it does
  /// not compile; callers turn that into a ConfigError naming their key.
  explicit Regex(const std::string& pattern, const RegexOptions& options = {});
  ~Regex();
  Regex(Regex&& other) noexcept;
  Regex& operator=(Regex&& other) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  /// The captures of the first match (group 0 = the whole match; an unset group is
  /// nullopt), or nullopt when there is no match. `full`: the match must span all of `text`.
  std::optional<std::vector<std::optional<std::string_view>>> match(std::string_view text, bool full) const;
  bool search(std::string_view text) const { return match(text, false).has_value(); }
  bool full_match(std::string_view text) const { return match(text, true).has_value(); }
  /// Capturing groups in the pattern (not counting group 0).
  int n_groups() const { return n_groups_; }
  const std::string& pattern() const { return pattern_; }

  /// `literal` with every ASCII character that is special in a pattern escaped.
  static std::string escape(std::string_view literal);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_;
  int n_groups_ = 0;
};

}  // namespace rlft::reward
