#pragma once
// Pieces SFT and GRPO share: expert-load metrics, the console line, router loads summed
// over a step's forwards, and the timing of a step's phases.

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

#include "core/distributed.h"
#include "policy/causal_lm.h"
#include "reward/combine.h"

namespace rlft::rl {

using Metrics = std::vector<std::pair<std::string, double>>;

/// Router loads of several forwards, summed per layer.
class LoadAccumulator {
 public:
  void add(const std::vector<policy::RouterStats>& stats);
  bool empty() const { return loads_.empty(); }
  std::vector<policy::RouterStats> loads() const;
  /// moe/load/layer{N}/expert{E} (shares summing to 1 per layer), moe/balance/layer{N}
  /// (max/mean) and moe/balance_max (the worst layer).
  void append_metrics(Metrics& m) const;
  void clear() { loads_.clear(); }
  /// Sums the loads over ranks (every rank then holds the global loads).
  void all_reduce(dist::Context& context);

 private:
  std::map<int64_t, at::Tensor> loads_;
};

/// The global batch of `batch` rows (a config key, `key`) split over the ranks: the rows each
/// rank takes. Throws ConfigError unless the world size divides it.
int64_t rank_share(const dist::Context& context, int64_t batch, const std::string& key);

/// The training split's seeded epoch order (data::epoch_order per epoch) at global positions:
/// every rank agrees on which example position c holds.
class EpochOrder {
 public:
  EpochOrder(int64_t size, uint64_t seed) : size_(size), seed_(seed) {}
  /// The example index at global position c (epoch c / size).
  int64_t at(int64_t c);

 private:
  int64_t size_;
  uint64_t seed_;
  std::vector<int64_t> order_;
  int64_t epoch_ = -1;
};

/// Every rank's scores concatenated in rank order (totals and parts; seconds are the
/// slowest rank's). `local` must carry the part names even when it holds no rows.
reward::RewardScores all_gather_scores(dist::Context& context, const reward::RewardScores& local);

/// Every parameter of `module` that requires grad, with its name (what the optimizer steps;
/// parameters that never get a gradient, e.g. an unused LM head, are skipped by AdamW).
std::vector<std::pair<std::string, at::Tensor>> trainable_parameters(const torch::nn::Module& module);

/// DeepSeek-V3's aux-loss-free balancing after an optimizer step: moves the router biases of
/// the trunk's MoE layers (MTP layers are left alone) by `gamma` against their loads. Does
/// nothing when gamma is 0 or the model has no balanced router bias (CausalLM::has_router_bias).
void update_trunk_router_bias(policy::CausalLM& model, const std::vector<policy::RouterStats>& loads, double gamma);

/// "step 12/200 | reward 0.41 ± 0.32 | acc 0.38 | loss 0.012 | ..." from chosen metrics.
std::string console_line(const std::string& head, const Metrics& m, const std::vector<std::pair<std::string, std::string>>& show);

/// Seconds since `t0` (steady clock).
double seconds_since(const std::chrono::steady_clock::time_point& t0);

}  // namespace rlft::rl
