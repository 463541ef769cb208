#include "rl/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace rlft::rl {

void ScheduleOptions::validate() const {
  RLFT_CHECK_OPTION(kind == "constant" || kind == "cosine", "kind", kind, "known schedules are constant, cosine");
  RLFT_CHECK_OPTION(lr > 0, "lr", lr, "must be > 0");
  RLFT_CHECK_OPTION(warmup_steps >= 0, "warmup_steps", warmup_steps, "must be >= 0");
  RLFT_CHECK_OPTION(total_steps >= 1, "total_steps", total_steps, "must be >= 1");
  RLFT_CHECK_OPTION(min_lr_ratio >= 0 && min_lr_ratio <= 1, "min_lr_ratio", min_lr_ratio, "must be in [0, 1]");
}

double learning_rate(const ScheduleOptions& o, int64_t step) {
  if (step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  if (o.kind == "constant") return o.lr;
  const double floor = o.lr * o.min_lr_ratio;
  const double span = static_cast<double>(std::max<int64_t>(1, o.total_steps - o.warmup_steps));
  const double p = std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
  return floor + (o.lr - floor) * 0.5 * (1.0 + std::cos(M_PI * p));
}

}  // namespace rlft::rl
