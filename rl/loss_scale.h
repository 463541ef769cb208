#pragma once
// Dynamic loss scaling for fp16 compute (Micikevicius et al. 2018, as torch.cuda.amp's
// GradScaler): multiply the loss by `scale` before backward, divide the gradients by it
// after; on a non-finite gradient skip the step and back off, and after `growth_interval`
// good steps in a row grow the scale again.

#include <cstdint>

namespace rlft::rl {

struct LossScaleOptions {
  double init_scale = 65536.0;     ///< starting scale (> 0)
  double growth_factor = 2.0;      ///< multiply after growth_interval good steps (> 1)
  double backoff_factor = 0.5;     ///< multiply on an overflow, in (0, 1)
  int64_t growth_interval = 2000;  ///< good steps in a row before growing (>= 1)
  double min_scale = 1.0;          ///< never scale below this (> 0)
  void validate() const;           ///< throws rlft::OptionError naming the field
};

class DynamicLossScale {
 public:
  explicit DynamicLossScale(LossScaleOptions options = {});
  double scale() const { return scale_; }
  /// Records one step's outcome; returns true when the step may be applied (gradients
  /// finite), false when it must be skipped.
  bool update(bool gradients_finite);
  int64_t good_steps() const { return good_steps_; }
  int64_t skipped_steps() const { return skipped_; }
  /// For trainer state: restore exactly where a checkpoint left off.
  void restore(double scale, int64_t good_steps, int64_t skipped);

 private:
  LossScaleOptions o_;
  double scale_;
  int64_t good_steps_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace rlft::rl
