#include "rl/optimizer.h"

#include <torch/nn/utils/clip_grad.h>
#include <torch/serialize/archive.h>

#include <cmath>
#include <sstream>

#include "core/error.h"

namespace rlft::rl {

void OptimizerOptions::validate() const {
  RLFT_CHECK_OPTION(beta1 >= 0 && beta1 < 1, "beta1", beta1, "must be in [0, 1)");
  RLFT_CHECK_OPTION(beta2 >= 0 && beta2 < 1, "beta2", beta2, "must be in [0, 1)");
  RLFT_CHECK_OPTION(eps > 0, "eps", eps, "must be > 0");
  RLFT_CHECK_OPTION(weight_decay >= 0, "weight_decay", weight_decay, "must be >= 0");
  RLFT_CHECK_OPTION(max_grad_norm >= 0, "max_grad_norm", max_grad_norm, "must be >= 0 (0 = no clipping)");
}

Optimizer::Optimizer(const std::vector<std::pair<std::string, at::Tensor>>& params, const OptimizerOptions& options)
    : options_(options) {
  options_.validate();
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& [name, p] : params) {
    RLFT_CHECK(p.requires_grad(), "optimizer: parameter {} does not require grad", name);
    RLFT_CHECK(p.scalar_type() == at::kFloat, "optimizer: parameter {} is {}, expected float32 master weights", name,
               c10::toString(p.scalar_type()));
    (p.dim() >= 2 ? decay : no_decay).push_back(p);
    params_.push_back(p);
  }
  n_decayed_ = static_cast<int64_t>(decay.size());
  n_not_decayed_ = static_cast<int64_t>(no_decay.size());
  auto make = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(1e-3).betas({options_.beta1, options_.beta2}).eps(options_.eps).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, make(options_.weight_decay));
  groups.emplace_back(no_decay, make(0.0));
  adamw_ = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(1e-3));
}

void Optimizer::zero_grad() {
  for (auto& p : params_)
    if (p.grad().defined()) p.mutable_grad().zero_();
}

StepReport Optimizer::step(double lr, double grad_divisor) {
  RLFT_CHECK(lr >= 0 && std::isfinite(lr), "optimizer step: learning rate {} is not a finite number >= 0", lr);
  StepReport report;
  std::vector<at::Tensor> with_grad;
  for (auto& p : params_)
    if (p.grad().defined()) with_grad.push_back(p);
  if (grad_divisor != 1.0)
    for (auto& p : with_grad) p.mutable_grad().div_(grad_divisor);
  double sq = 0.0;
  for (auto& p : with_grad) sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  report.grad_norm = std::sqrt(sq);
  if (!std::isfinite(report.grad_norm)) {
    zero_grad();
    return report;  // never let inf/nan reach the weights or the moments
  }
  if (options_.max_grad_norm > 0 && report.grad_norm > options_.max_grad_norm) {
    const double scale = options_.max_grad_norm / (report.grad_norm + 1e-6);
    for (auto& p : with_grad) p.mutable_grad().mul_(scale);
  }
  for (auto& group : adamw_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  adamw_->step();
  zero_grad();
  report.applied = true;
  return report;
}

std::string Optimizer::save_state() const {
  torch::serialize::OutputArchive archive;
  adamw_->save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void Optimizer::load_state(const std::string& bytes) {
  torch::serialize::InputArchive archive;
  std::istringstream in(bytes);
  try {
    archive.load_from(in);
    adamw_->load(archive);
  } catch (const c10::Error& e) {
    throw Error(fmt::format("cannot load the optimizer state: {}", e.what_without_backtrace()));
  }
}

std::vector<std::pair<std::string, at::Tensor>> trainable_parameters(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : module.named_parameters(true))
    if (p.value().requires_grad()) out.emplace_back(p.key(), p.value());
  return out;
}

}  // namespace rlft::rl
