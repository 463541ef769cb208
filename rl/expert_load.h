#pragma once
// Expert loads of an MoE policy during training: the router loads of a step's forwards,
// their metrics, and DeepSeek-V3's aux-loss-free balancing that moves the router biases
// against them (arXiv 2412.19437 §2.1.2).

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <vector>

#include "core/distributed.h"
#include "policy/causal_lm.h"
#include "rl/step_log.h"

namespace rlft::rl {

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

/// DeepSeek-V3's aux-loss-free balancing after an optimizer step: moves the router biases of
/// the trunk's MoE layers (MTP layers are left alone) by `gamma` against their loads. Does
/// nothing when gamma is 0 or the model has no balanced router bias (CausalLM::has_router_bias).
/// Nothing under LoRA (the base, router biases included, stays frozen).
void update_trunk_router_bias(policy::CausalLM& model, const std::vector<policy::RouterStats>& loads, double gamma);

}  // namespace rlft::rl
