#pragma once
// Errors that reach a user. Only app/ turns them into exit codes:
//   UsageError, ConfigError → 2 (the user must change the command line or the config);
//   any other Error → 1 (a runtime failure).
// RLFT_CHECK is for user-reachable failures; assert() only for impossible states.

#include <fmt/format.h>

#include <stdexcept>
#include <string>

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
