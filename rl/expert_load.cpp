#include "rl/expert_load.h"

#include <fmt/format.h>

#include <algorithm>

namespace rlft::rl {

void LoadAccumulator::add(const std::vector<policy::RouterStats>& stats) {
  for (const auto& s : stats) {
    auto l = s.load.detach().to(at::kCPU, at::kLong);
    auto it = loads_.find(s.layer);
    if (it == loads_.end())
      loads_.emplace(s.layer, l.clone());
    else
      it->second.add_(l);
  }
}

void LoadAccumulator::all_reduce(dist::Context& context) {
  if (context.world_size() == 1) return;
  std::vector<at::Tensor> tensors;
  for (auto& [layer, load] : loads_) tensors.push_back(load);
  context.all_reduce_sum(tensors);
}

std::vector<policy::RouterStats> LoadAccumulator::loads() const {
  std::vector<policy::RouterStats> out;
  for (const auto& [layer, load] : loads_) out.push_back({layer, load});
  return out;
}

void LoadAccumulator::append_metrics(Metrics& m) const {
  double worst = 0.0;
  for (const auto& [layer, load] : loads_) {
    const auto l = load.to(at::kDouble);
    const double total = l.sum().item<double>();
    if (total <= 0) continue;
    const int64_t E = l.size(0);
    auto a = l.accessor<double, 1>();
    for (int64_t e = 0; e < E; ++e) m.emplace_back(fmt::format("moe/load/layer{}/expert{}", layer, e), a[e] / total);
    const double balance = l.max().item<double>() / (total / static_cast<double>(E));
    m.emplace_back(fmt::format("moe/balance/layer{}", layer), balance);
    worst = std::max(worst, balance);
  }
  if (!loads_.empty()) m.emplace_back("moe/balance_max", worst);
}

void update_trunk_router_bias(policy::CausalLM& model, const std::vector<policy::RouterStats>& loads, double gamma) {
  // Under LoRA the base is frozen, router biases included: the adapter files then describe
  // the whole change, and the reference (adapters off) is the base exactly.
  if (gamma <= 0 || !model->has_router_bias() || model->lora) return;
  std::vector<policy::RouterStats> trunk;
  for (const auto& s : loads)
    if (s.layer < model->config().num_hidden_layers) trunk.push_back(s);
  if (!trunk.empty()) model->update_router_bias(trunk, gamma);
}

}  // namespace rlft::rl
