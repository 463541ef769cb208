#pragma once
// Learning-rate schedules: linear warm-up, then constant or cosine decay to a floor.
//   warm-up   lr(s) = lr · (s + 1) / warmup_steps          for s < warmup_steps
//   cosine    lr(s) = floor + (lr − floor) · ½(1 + cos(π · p)),  p = (s − warmup) / (total − warmup)
//   floor     = lr · min_lr_ratio

#include <cstdint>
#include <string>

namespace rlft::rl {

struct ScheduleOptions {
  std::string kind = "cosine";  ///< "constant" | "cosine"
  double lr = 1e-5;             ///< peak learning rate (> 0)
  int64_t warmup_steps = 0;     ///< linear warm-up length in optimizer steps (>= 0)
  int64_t total_steps = 1;      ///< the schedule's length in optimizer steps (>= 1; > warmup for cosine)
  double min_lr_ratio = 0.1;    ///< cosine floor as a fraction of lr, in [0, 1]
  void validate() const;        ///< throws rlft::OptionError naming the field
};

/// The learning rate at optimizer step `step` (0-based). Past total_steps it stays at the floor.
double learning_rate(const ScheduleOptions& options, int64_t step);

}  // namespace rlft::rl
