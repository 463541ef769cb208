#include "rl/train_common.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "data/dataset.h"

namespace rlft::rl {

void LoadAccumulator::add(const std::vector<policy::RouterStats>& stats) {
  for (const auto& s : stats) {
    auto l = s.load.detach().to(at::kCPU, at::kLong);
    auto it = loads_.find(s.layer);
    if (it == loads_.end()) loads_.emplace(s.layer, l.clone());
    else it->second.add_(l);
  }
}

void LoadAccumulator::all_reduce(dist::Context& context) {
  if (context.world_size() == 1) return;
  std::vector<at::Tensor> tensors;
  for (auto& [layer, load] : loads_) tensors.push_back(load);
  context.all_reduce_sum(tensors);
}

int64_t rank_share(const dist::Context& context, int64_t batch, const std::string& key) {
  const int64_t w = context.world_size();
  if (batch % w != 0)
    throw ConfigError(fmt::format("{} = {} must be divisible by the world size {} (each rank takes an equal share of "
                                  "the global batch)",
                                  key, batch, w));
  return batch / w;
}

int64_t EpochOrder::at(int64_t c) {
  const int64_t epoch = c / size_;
  if (epoch != epoch_) {
    order_ = data::epoch_order(size_, seed_, epoch);
    epoch_ = epoch;
  }
  return order_[static_cast<size_t>(c % size_)];
}

reward::RewardScores all_gather_scores(dist::Context& context, const reward::RewardScores& local) {
  if (context.world_size() == 1) return local;
  reward::RewardScores out;
  out.names = local.names;
  out.weights = local.weights;
  out.total = context.all_gather(local.total);
  for (const auto& part : local.parts) out.parts.push_back(context.all_gather(part));
  out.seconds = context.max(local.seconds);
  return out;
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

std::vector<std::pair<std::string, at::Tensor>> trainable_parameters(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : module.named_parameters(true))
    if (p.value().requires_grad()) out.emplace_back(p.key(), p.value());
  return out;
}

void update_trunk_router_bias(policy::CausalLM& model, const std::vector<policy::RouterStats>& loads, double gamma) {
  if (gamma <= 0 || !model->has_router_bias()) return;
  std::vector<policy::RouterStats> trunk;
  for (const auto& s : loads)
    if (s.layer < model->config().num_hidden_layers) trunk.push_back(s);
  if (!trunk.empty()) model->update_router_bias(trunk, gamma);
}

std::string console_line(const std::string& head, const Metrics& m,
                         const std::vector<std::pair<std::string, std::string>>& show) {
  std::string line = head;
  for (const auto& [label, name] : show) {
    const auto it = std::find_if(m.begin(), m.end(), [&](const auto& kv) { return kv.first == name; });
    if (it == m.end()) continue;
    line += fmt::format(" | {} {:.4g}", label, it->second);
  }
  return line;
}

double seconds_since(const std::chrono::steady_clock::time_point& t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace rlft::rl
