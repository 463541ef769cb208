#include "rl/loss_scale.h"

#include <algorithm>

#include "core/error.h"

namespace rlft::rl {

void LossScaleOptions::validate() const {
  RLFT_CHECK_OPTION(init_scale > 0, "init_scale", init_scale, "must be > 0");
  RLFT_CHECK_OPTION(growth_factor > 1, "growth_factor", growth_factor, "must be > 1");
  RLFT_CHECK_OPTION(backoff_factor > 0 && backoff_factor < 1, "backoff_factor", backoff_factor, "must be in (0, 1)");
  RLFT_CHECK_OPTION(growth_interval >= 1, "growth_interval", growth_interval, "must be >= 1");
  RLFT_CHECK_OPTION(min_scale > 0, "min_scale", min_scale, "must be > 0");
}

DynamicLossScale::DynamicLossScale(LossScaleOptions options) : o_(options), scale_(options.init_scale) {
  o_.validate();
}

bool DynamicLossScale::update(bool gradients_finite) {
  if (!gradients_finite) {
    scale_ = std::max(o_.min_scale, scale_ * o_.backoff_factor);
    good_steps_ = 0;
    ++skipped_;
    return false;
  }
  if (++good_steps_ >= o_.growth_interval) {
    scale_ *= o_.growth_factor;
    good_steps_ = 0;
  }
  return true;
}

void DynamicLossScale::restore(double scale, int64_t good_steps, int64_t skipped) {
  scale_ = scale;
  good_steps_ = good_steps;
  skipped_ = skipped;
}

}  // namespace rlft::rl
