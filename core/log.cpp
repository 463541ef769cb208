#include "core/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "core/error.h"

namespace rlft::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::atomic<int> g_rank{-1};
std::atomic<int> g_world{1};
std::mutex g_write_mutex;  // one line at a time from many threads

const char* level_name(Level l) {
  switch (l) {
    case Level::kDebug:
      return "DEBUG";
    case Level::kInfo:
      return "INFO ";
    case Level::kWarn:
      return "WARN ";
    case Level::kError:
      return "ERROR";
    case Level::kOff:
      break;
  }
  return "";
}

}  // namespace

Level parse_level(std::string_view name) {
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn" || name == "warning") return Level::kWarn;
  if (name == "error") return Level::kError;
  if (name == "off") return Level::kOff;
  throw Error(fmt::format("unknown log level '{}': known levels are debug, info, warn, error, off", name));
}

void set_level(Level level) {
  g_level = level;
}
Level level() {
  return g_level;
}

void set_rank(int rank, int world_size) {
  g_rank = world_size > 1 ? rank : -1;
  g_world = world_size;
}

void write(Level level, std::string_view message) {
  using clock = std::chrono::system_clock;
  const auto now = clock::now();
  const std::time_t t = clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  localtime_r(&t, &tm);
  std::string line =
      fmt::format("{:02}:{:02}:{:02}.{:03} {} ", tm.tm_hour, tm.tm_min, tm.tm_sec, ms, level_name(level));
  if (g_rank >= 0) line += fmt::format("[rank {}/{}] ", g_rank.load(), g_world.load());
  line += message;
  line += '\n';
  std::lock_guard<std::mutex> lock(g_write_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace rlft::log
