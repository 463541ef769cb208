#pragma once
// Levelled logging for people, on stderr. Metrics go to the store, not here.
// Each line: "HH:MM:SS.mmm LEVEL [rank N] message"; the rank tag appears once set.

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace rlft::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

/// Parses "debug" | "info" | "warn" | "error" | "off"; throws rlft::Error otherwise.
Level parse_level(std::string_view name);
void set_level(Level level);
Level level();
/// Tags every later line with "[rank R/W]" (distributed runs); world_size 1 clears it.
void set_rank(int rank, int world_size);
void write(Level level, std::string_view message);

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kDebug) write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kInfo) write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kWarn) write(Level::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kError) write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace rlft::log
