#pragma once
// Errors that reach a user. Only app/ turns them into exit codes:
//   UsageError, ConfigError (OptionError among them) → 2 (the user must change the command
//   line or the config);
//   any other Error → 1 (a runtime failure).
// RLFT_CHECK is for user-reachable failures; RLFT_CHECK_OPTION for an options struct's
// validate(); assert() only for impossible states.

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace rlft {

/// A runtime failure the user can act on (I/O, a corrupt file, a dead rank …). Exit code 1.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// A bad command line: unknown flag, missing argument. Exit code 2.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& what) : Error(what) {}
};

/// A bad configuration: the message names file:line:column, the dotted key, the value and
/// the constraint. Exit code 2, raised before any heavy work starts.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& what) : Error(what) {}
};

/// An options struct's validate() rejecting one field. `key` is the field's key relative to
/// the struct, as its YAML section spells it ("kl_beta", "sampling.top_p"); what() reads
/// "key = value: constraint". An empty key blames the struct as a whole (what() is then the
/// constraint alone, e.g. "set words, patterns or file"). The config layer (read_options in
/// core/config.h) re-raises it at that key's own file:line:column.
class OptionError : public ConfigError {
 public:
  OptionError(std::string key, std::string value, std::string constraint)
      : ConfigError(key.empty() ? constraint : key + " = " + value + ": " + constraint),
        key_(std::move(key)),
        value_(std::move(value)),
        constraint_(std::move(constraint)) {}
  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }
  const std::string& constraint() const { return constraint_; }
  /// The same error with another key: the field as an enclosing struct names it.
  OptionError renamed(const std::string& key) const { return OptionError(key, value_, constraint_); }

 private:
  std::string key_;
  std::string value_;
  std::string constraint_;
};

/// Runs `options.validate()` of a sub-struct kept under `section` of the caller's YAML
/// section, so an OptionError names "section.key".
template <typename Options>
void validate_within(const std::string& section, const Options& options) {
  try {
    options.validate();
  } catch (const OptionError& e) {
    throw e.renamed(section + "." + e.key());
  }
}

}  // namespace rlft

/// RLFT_CHECK(cond, "fmt {}", args…): throw rlft::Error with the formatted message if !cond.
#define RLFT_CHECK(cond, ...)                                     \
  do {                                                            \
    if (!(cond)) throw ::rlft::Error(::fmt::format(__VA_ARGS__)); \
  } while (false)

/// RLFT_CHECK_AS(ErrorType, cond, "fmt {}", args…): the same with another error type.
#define RLFT_CHECK_AS(type, cond, ...)                   \
  do {                                                   \
    if (!(cond)) throw type(::fmt::format(__VA_ARGS__)); \
  } while (false)

/// RLFT_CHECK_OPTION(cond, "key", value, "constraint {}", args…): in a validate(), throw
/// rlft::OptionError naming the field `key` with `value` (formatted with {}) unless cond.
#define RLFT_CHECK_OPTION(cond, key, value, ...)                                                             \
  do {                                                                                                       \
    if (!(cond)) throw ::rlft::OptionError((key), ::fmt::format("{}", (value)), ::fmt::format(__VA_ARGS__)); \
  } while (false)
