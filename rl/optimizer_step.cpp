#include "rl/optimizer_step.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/log.h"
#include "rl/schedule.h"

namespace rlft::rl {

OptimizerStep::OptimizerStep(const std::vector<std::pair<std::string, at::Tensor>>& params,
                             const PrecisionOptions& precision, const OptimOptions& optim, int64_t total_steps,
                             dist::Context* context, double bucket_mb)
    : precision_(precision), optim_(optim), optimizer_(params, optim.adamw), scale_(precision.scale) {
  if (context && context->world_size() > 1) {
    std::vector<at::Tensor> tensors;
    for (const auto& [name, t] : params) tensors.push_back(t);
    sync_ = std::make_unique<GradientSync>(*context, std::move(tensors), bucket_mb);
  }
  optim_.schedule.total_steps = std::max<int64_t>(total_steps, optim_.schedule.warmup_steps + 1);
  optim_.schedule.validate();
  if (!precision_.loss_scaling) scale_.restore(1.0, 0, 0);
}

double OptimizerStep::loss_multiplier(const TrainerState& state) const {
  double m = precision_.loss_scaling ? scale_.scale() : 1.0;
  const auto& inj = precision_.inject_nonfinite;
  if (std::find(inj.begin(), inj.end(), state.optimizer_steps + 1) != inj.end())
    m *= std::numeric_limits<double>::infinity();
  return m;
}

OptimizerStepResult OptimizerStep::step(TrainerState& state) {
  OptimizerStepResult r;
  r.lr = learning_rate(optim_.schedule, state.optimizer_steps);
  r.loss_scale = precision_.loss_scaling ? scale_.scale() : 1.0;
  if (sync_) r.sync = sync_->sync();
  const auto report = optimizer_.step(r.lr, r.loss_scale);
  r.applied = report.applied;
  r.grad_norm = report.grad_norm;
  if (precision_.loss_scaling) scale_.update(report.applied);
  ++state.optimizer_steps;
  if (r.applied) {
    state.consecutive_skips = 0;
  } else {
    ++state.skipped_steps;
    ++state.consecutive_skips;
    log::warn("optimizer step {} skipped: non-finite gradients (grad norm {}){}", state.optimizer_steps, r.grad_norm,
              precision_.loss_scaling ? fmt::format("; loss scale now {}", scale_.scale()) : "");
    RLFT_CHECK(state.consecutive_skips < precision_.max_consecutive_skips,
               "{} optimizer steps in a row had non-finite gradients (precision.max_consecutive_skips = {}): the "
               "run is diverging; lower optim.lr, or use compute: fp32",
               state.consecutive_skips, precision_.max_consecutive_skips);
  }
  store(state);
  return r;
}

void OptimizerStep::restore(const TrainerState& s) {
  scale_.restore(s.loss_scale, s.loss_scale_good_steps, s.loss_scale_skipped);
}

void OptimizerStep::store(TrainerState& s) const {
  s.loss_scale = scale_.scale();
  s.loss_scale_good_steps = scale_.good_steps();
  s.loss_scale_skipped = scale_.skipped_steps();
}

TrainerState resume_trainer_state(const std::string& checkpoint, dist::Context& d, OptimizerStep& opt) {
  if (checkpoint.empty()) return {};
  TrainerState state;
  std::string state_json, manifest;
  d.on_main("read the trainer state", [&] {
    state = load_trainer_state(checkpoint, opt.optimizer());
    if (d.world_size() == 1) return;
    state_json = trainer_state_json(state);
    manifest = opt.optimizer().state_manifest();
  });
  if (d.world_size() > 1) {
    // The moments travel tensor by tensor into place, never as one serialised copy.
    d.broadcast_string(state_json);
    d.broadcast_string(manifest);
    if (!d.is_main()) {
      state = trainer_state_from_json(state_json, checkpoint);
      opt.optimizer().create_state(manifest);
    }
    std::vector<at::Tensor> moments = opt.optimizer().state_tensors();
    d.broadcast(moments);
  }
  opt.restore(state);
  return state;
}

}  // namespace rlft::rl
