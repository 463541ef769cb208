#include "rl/step_log.h"

#include <fmt/format.h>

#include <algorithm>

namespace rlft::rl {

std::string console_line(const std::string& head, const Metrics& m,
                         const std::vector<std::pair<std::string, std::string>>& show) {
  std::string line = head;
  for (const auto& [label, name] : show) {
    const auto it = std::find_if(m.begin(), m.end(), [&](const auto& kv) { return kv.first == name; });
    if (it == m.end()) continue;
    line += fmt::format(" | {} {:.4g}", label, it->second);
  }
  return line;
}

double seconds_since(const std::chrono::steady_clock::time_point& t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace rlft::rl
