#pragma once
// What a trainer says about a step: its metrics (every one goes to the store) and the one
// console line chosen from them.

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace rlft::rl {

using Metrics = std::vector<std::pair<std::string, double>>;

/// "step 12/200 | reward 0.41 | acc 0.38 | loss 0.012 | ..." from chosen metrics: `show`
/// holds (label, metric name) pairs; metrics the step lacks are left out.
std::string console_line(const std::string& head, const Metrics& m,
                         const std::vector<std::pair<std::string, std::string>>& show);

/// Seconds since `t0` (steady clock).
double seconds_since(const std::chrono::steady_clock::time_point& t0);

}  // namespace rlft::rl
