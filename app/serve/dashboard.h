#pragma once
// The read-only pages of `rlft serve`: the runs, one run (charts, expert load, config,
// checkpoints) and its rollouts. Each returns the HTML that goes inside the page frame,
// with the part that changes while a run writes wrapped in <div id="live">.

#include <cstdint>
#include <optional>
#include <string>

#include "data/store.h"

namespace rlft::app::serve {

/// The table of runs with status, steps and newest reward.
std::string runs_body(data::Store& store);

/// One run: status, metric charts (svg_line_charts), expert-load heat map, resolved config,
/// checkpoints. Throws rlft::Error when there is no run `run_id` (the server answers 404).
std::string run_body(data::Store& store, int64_t run_id);

/// Filters for the rollouts table.
struct RolloutQuery {
  std::string search;           ///< substring of prompt or completion ("" = all)
  std::optional<int64_t> step;  ///< one step only
  int64_t offset = 0;           ///< rows to skip
  int64_t limit = 50;           ///< rows per page
};
std::string rollouts_body(data::Store& store, int64_t run_id, const RolloutQuery& query);

/// Expert load per layer over steps from metrics moe/load/layer{N}/expert{E} (share of routed
/// token slots, 1/E when balanced) and moe/balance/layer{N}, as one SVG heat map per layer;
/// "" when the run logged none.
std::string expert_heatmaps(data::Store& store, int64_t run_id);

/// The run's status text, for <title>; throws when missing.
data::RunRecord require_run(data::Store& store, int64_t run_id);

}  // namespace rlft::app::serve
