#include "rl/step_memory.h"

#include "core/memory.h"
#include "rl/rank_figures.h"

namespace rlft::rl {

void start_step_memory(const at::Device& device) {
  memory::reset_peak_rss();
  if (device.is_cuda()) memory::reset_cuda_peak(device.index() < 0 ? 0 : device.index());
}

void append_step_memory(Metrics& m, dist::Context& context, const at::Device& device) {
  const auto cuda =
      device.is_cuda() ? memory::cuda_max_allocated_bytes(device.index() < 0 ? 0 : device.index()) : std::nullopt;
  RankFigures peaks;
  peaks.add("rss", static_cast<double>(memory::peak_rss_bytes()) / 1e6);
  peaks.add("cuda", cuda ? static_cast<double>(*cuda) / 1e6 : 0.0);
  peaks.max_over(context);
  m.emplace_back("memory/peak_rss_mb", peaks["rss"]);
  if (cuda) m.emplace_back("memory/cuda_max_allocated_mb", peaks["cuda"]);
}

}  // namespace rlft::rl
