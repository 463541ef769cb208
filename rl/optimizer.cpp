#include "rl/optimizer.h"

#include <fmt/ranges.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/serialize/archive.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <sstream>
#include <type_traits>
#include <unordered_map>

#include "core/error.h"
#include "policy/checkpoint/safetensors.h"

namespace rlft::rl {

namespace {

using AdamWState = torch::optim::AdamWParamState;
const char* const kMoments[] = {"exp_avg", "exp_avg_sq"};

// LibTorch keys an optimizer's per-parameter state by the TensorImpl: as its address printed
// to a string (1.x) or as the pointer itself (2.x).
template <class Map>
typename Map::key_type state_key(const at::Tensor& p) {
  if constexpr (std::is_same_v<typename Map::key_type, std::string>) {
    return c10::guts::to_string(p.unsafeGetTensorImpl());
  } else {
    return p.unsafeGetTensorImpl();
  }
}

template <class Map>
AdamWState* find_state(Map& state, const at::Tensor& p) {
  const auto it = state.find(state_key<Map>(p));
  return it == state.end() ? nullptr : static_cast<AdamWState*>(it->second.get());
}

}  // namespace

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
    names_.push_back(name);
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
  // Undefined, not zero (PyTorch's set_to_none): a parameter that gets no gradient in the
  // next step (an expert no token chose) is then skipped by AdamW, in an uninterrupted run as
  // in a resumed one. Zeroed gradients kept such an expert moving on its momentum in the
  // first and not in the second, which broke bitwise resume.
  for (auto& p : params_)
    if (p.grad().defined()) p.mutable_grad().reset();
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

void Optimizer::save_state(const std::string& path) const {
  checkpoint::TensorMap tensors;
  auto& state = adamw_->state();
  for (size_t i = 0; i < params_.size(); ++i) {
    const AdamWState* st = find_state(state, params_[i]);
    if (!st) continue;  // never stepped (no gradient yet): no state, as in AdamW itself
    tensors.emplace(names_[i] + ".exp_avg", st->exp_avg());
    tensors.emplace(names_[i] + ".exp_avg_sq", st->exp_avg_sq());
    tensors.emplace(names_[i] + ".step", at::full({1}, st->step(), at::kLong));
  }
  checkpoint::write_safetensors(path, tensors, {{"format", "rlft.adamw"}});
}

void Optimizer::load_state(const std::string& path) {
  const auto file = checkpoint::SafetensorsFile::open(path);
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < names_.size(); ++i) index.emplace(names_[i], i);
  for (const auto& name : file.names()) {
    const auto dot = name.rfind('.');
    const std::string param = dot == std::string::npos ? name : name.substr(0, dot);
    const std::string part = dot == std::string::npos ? "" : name.substr(dot + 1);
    RLFT_CHECK(part == "exp_avg" || part == "exp_avg_sq" || part == "step",
               "{}: `{}` is not optimizer state (<parameter>.exp_avg, .exp_avg_sq or .step)", path, name);
    RLFT_CHECK(index.count(param), "{}: `{}` is the state of `{}`, which is not a trainable parameter of this model",
               path, name, param);
  }
  auto& state = adamw_->state();
  state.clear();
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string& name = names_[i];
    const at::Tensor& p = params_[i];
    if (!file.contains(name + ".step")) {
      for (const char* m : kMoments)
        RLFT_CHECK(!file.contains(name + "." + m), "{}: `{}.{}` without `{}.step`", path, name, m, name);
      continue;
    }
    const at::Tensor step = file.tensor(name + ".step");
    RLFT_CHECK(step.scalar_type() == at::kLong && step.numel() == 1, "{}: `{}.step` must be one int64", path, name);
    auto st = std::make_unique<AdamWState>();
    st->step(step.item<int64_t>());
    for (const char* m : kMoments) {
      const std::string key = name + "." + m;
      RLFT_CHECK(file.contains(key), "{}: `{}` is missing (the state of `{}` is incomplete)", path, key, name);
      const auto& info = file.info(key);
      RLFT_CHECK(info.shape == p.sizes().vec(), "{}: `{}` has shape [{}] but the parameter has [{}]", path, key,
                 fmt::join(info.shape, ", "), fmt::join(p.sizes(), ", "));
      at::Tensor t = at::empty_like(p, at::MemoryFormat::Contiguous).copy_(file.tensor(key));
      m == kMoments[0] ? st->exp_avg(t) : st->exp_avg_sq(t);
    }
    state[state_key<std::remove_reference_t<decltype(state)>>(p)] = std::move(st);
  }
}

void Optimizer::load_archive_state(const std::string& bytes) {
  torch::serialize::InputArchive archive;
  std::istringstream in(bytes);
  try {
    archive.load_from(in);
    adamw_->load(archive);
  } catch (const c10::Error& e) {
    throw Error(fmt::format("cannot load the optimizer state: {}", e.what_without_backtrace()));
  }
}

std::string Optimizer::state_manifest() const {
  nlohmann::json m = nlohmann::json::array();
  auto& state = adamw_->state();
  for (size_t i = 0; i < params_.size(); ++i)
    if (const AdamWState* st = find_state(state, params_[i])) m.push_back({names_[i], st->step()});
  return m.dump();
}

void Optimizer::create_state(const std::string& manifest) {
  std::unordered_map<std::string, int64_t> steps;
  for (const auto& e : nlohmann::json::parse(manifest)) steps[e.at(0).get<std::string>()] = e.at(1).get<int64_t>();
  auto& state = adamw_->state();
  state.clear();
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto it = steps.find(names_[i]);
    if (it == steps.end()) continue;
    auto st = std::make_unique<AdamWState>();
    st->step(it->second);
    st->exp_avg(at::zeros_like(params_[i], at::MemoryFormat::Contiguous));
    st->exp_avg_sq(at::zeros_like(params_[i], at::MemoryFormat::Contiguous));
    state[state_key<std::remove_reference_t<decltype(state)>>(params_[i])] = std::move(st);
    steps.erase(it);
  }
  RLFT_CHECK(steps.empty(), "the optimizer state names `{}`, which is not a trainable parameter here",
             steps.empty() ? "" : steps.begin()->first);
}

std::vector<at::Tensor> Optimizer::state_tensors() const {
  std::vector<at::Tensor> out;
  auto& state = adamw_->state();
  for (const auto& p : params_)
    if (AdamWState* st = find_state(state, p)) out.push_back(st->exp_avg()), out.push_back(st->exp_avg_sq());
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> trainable_parameters(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : module.named_parameters(true))
    if (p.value().requires_grad()) out.emplace_back(p.key(), p.value());
  return out;
}

}  // namespace rlft::rl
