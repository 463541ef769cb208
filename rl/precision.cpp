#include "rl/precision.h"

#include <ATen/autocast_mode.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/log.h"
#include "rl/schedule.h"
#include "rl/train_common.h"

namespace rlft::rl {

AutocastGuard::AutocastGuard(Compute compute, const at::Device& device) {
  if (compute == Compute::kFp32) return;
  const auto dtype = compute == Compute::kBf16 ? at::kBFloat16 : at::kHalf;
  if (device.is_cuda()) {
    cuda_ = true;
    prev_cuda_ = at::autocast::is_enabled();
    prev_cuda_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(true);
  } else {
    cpu_ = true;
    prev_cpu_ = at::autocast::is_cpu_enabled();
    prev_cpu_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(true);
  }
}

AutocastGuard::~AutocastGuard() {
  if (cuda_) {
    at::autocast::set_enabled(prev_cuda_);
    at::autocast::set_autocast_gpu_dtype(prev_cuda_dtype_);
  }
  if (cpu_) {
    at::autocast::set_cpu_enabled(prev_cpu_);
    at::autocast::set_autocast_cpu_dtype(prev_cpu_dtype_);
  }
  if (cuda_ || cpu_) at::autocast::clear_cache();
}

void check_precision(const PrecisionOptions& p, const at::Device& device) {
  if (p.compute == Compute::kFp16 && !device.is_cuda())
    throw ConfigError(
        "precision.compute = fp16: fp16 autocast needs a CUDA device (LibTorch's CPU autocast computes in bf16); "
        "use compute: bf16 on CPU");
}

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

void OptimizerStep::restore(const TrainerState& s) { scale_.restore(s.loss_scale, s.loss_scale_good_steps, s.loss_scale_skipped); }

void OptimizerStep::store(TrainerState& s) const {
  s.loss_scale = scale_.scale();
  s.loss_scale_good_steps = scale_.good_steps();
  s.loss_scale_skipped = scale_.skipped_steps();
}

TrainerState resume_trainer_state(Job& job, OptimizerStep& opt) {
  if (job.resume_from().empty()) return {};
  auto& d = job.dist();
  TrainerState state;
  std::string state_json, optimizer_bytes;
  d.on_main("read the trainer state", [&] {
    state = load_trainer_state(job.resume_from(), opt.optimizer());
    state_json = trainer_state_json(state);
    optimizer_bytes = opt.optimizer().save_state();
  });
  if (d.world_size() > 1) {
    d.broadcast_string(state_json);
    d.broadcast_string(optimizer_bytes);
    if (!d.is_main()) {
      state = trainer_state_from_json(state_json, job.resume_from());
      opt.optimizer().load_state(optimizer_bytes);
    }
  }
  opt.restore(state);
  return state;
}

OptimizerStep make_optimizer_step(Job& job, const torch::nn::Module& module, int64_t total_steps) {
  const auto& spec = job.spec();
  return OptimizerStep(trainable_parameters(module), spec.precision, spec.optim, total_steps, &job.dist(),
                       spec.distributed.bucket_mb);
}

}  // namespace rlft::rl
