#include "policy/layers/router.h"

#include <limits>

#include "core/error.h"
#include "policy/shape.h"

namespace rlft::policy {

void RouterOptions::validate() const {
  RLFT_CHECK(n_experts > 0, "router: n_experts = {}: must be > 0", n_experts);
  RLFT_CHECK(top_k > 0 && top_k <= n_experts, "router: num_experts_per_tok = {}: must be in [1, {}]", top_k, n_experts);
  RLFT_CHECK(scoring == "softmax" || scoring == "sigmoid",
             "router: scoring_func = '{}': known scoring functions are softmax, sigmoid", scoring);
  RLFT_CHECK(n_group >= 1 && n_experts % n_group == 0, "router: n_group = {}: must divide n_routed_experts ({})",
             n_group, n_experts);
  RLFT_CHECK(topk_group >= 1 && topk_group <= n_group, "router: topk_group = {}: must be in [1, n_group = {}]",
             topk_group, n_group);
  RLFT_CHECK(top_k <= topk_group * (n_experts / n_group),
             "router: num_experts_per_tok = {} exceeds the {} experts of topk_group = {} groups", top_k,
             topk_group * (n_experts / n_group), topk_group);
  RLFT_CHECK(group_score == "top2_sum" || group_score == "max",
             "router: group score '{}': known group scores are top2_sum, max", group_score);
  RLFT_CHECK(group_score != "top2_sum" || n_group == 1 || n_experts / n_group >= 2,
             "router: top2_sum group scores need at least 2 experts per group");
}

RoutingResult route(const at::Tensor& logits, const at::Tensor& bias, const RouterOptions& o,
                    const at::Tensor& replay) {
  const int64_t N = logits.size(0), E = o.n_experts;
  RLFT_CHECK_SHAPE(logits, std::vector<int64_t>({-1, E}), "router logits");
  RoutingResult r;
  const auto logits32 = logits.to(at::kFloat);
  r.scores = o.scoring == "sigmoid" ? logits32.sigmoid() : at::softmax(logits32, -1);
  if (replay.defined()) {
    RLFT_CHECK(replay.dim() == 2 && replay.size(0) == N && replay.size(1) == o.top_k,
               "routing replay: expected indices [{}, {}], got {}", N, o.top_k, shape_str(replay));
    r.indices = replay.to(logits.device(), at::kLong);
  } else {
    at::NoGradGuard no_grad;
    auto choice = r.scores.detach();
    if (bias.defined()) choice = choice + bias.to(at::kFloat).unsqueeze(0);
    if (o.n_group > 1) {
      const int64_t per_group = E / o.n_group;
      const auto grouped = choice.view({N, o.n_group, per_group});
      const auto group_scores = o.group_score == "top2_sum" ? std::get<0>(grouped.topk(2, -1)).sum(-1)
                                                            : std::get<0>(grouped.max(-1));  // [N, G]
      const auto kept = std::get<1>(group_scores.topk(o.topk_group, -1));                    // [N, topk_group]
      const auto group_mask = at::zeros_like(group_scores, at::kBool).scatter_(1, kept, true);
      const auto expert_mask = group_mask.unsqueeze(-1).expand({N, o.n_group, per_group}).reshape({N, E});
      choice = choice.masked_fill(expert_mask.logical_not(), -std::numeric_limits<float>::infinity());
    }
    r.indices = std::get<1>(choice.topk(o.top_k, -1));  // [N, K], sorted by selection score
  }
  r.weights = r.scores.gather(1, r.indices);
  if (o.norm_topk_prob) r.weights = r.weights / (r.weights.sum(-1, /*keepdim=*/true) + 1e-20);
  if (o.routed_scaling_factor != 1.0) r.weights = r.weights * o.routed_scaling_factor;
  return r;
}

at::Tensor expert_load(const at::Tensor& indices, const at::Tensor& valid, int64_t n_experts) {
  at::NoGradGuard no_grad;
  auto flat = indices.reshape({-1});
  if (valid.defined()) {
    const auto keep = valid.reshape({-1, 1}).expand(indices.sizes()).reshape({-1});
    flat = flat.masked_select(keep);
  }
  return at::bincount(flat.to(at::kLong), {}, n_experts).to(at::kLong);
}

SwitchTerms switch_terms(const at::Tensor& logits, const at::Tensor& valid, int64_t top_k) {
  const int64_t E = logits.size(1);
  const auto probs = at::softmax(logits.to(at::kFloat), -1);  // [N, E]
  at::Tensor w;                                               // [N, 1] token weights (1 / number of valid tokens)
  if (valid.defined()) {
    const auto v = valid.reshape({-1, 1}).to(at::kFloat);
    w = v / v.sum().clamp_min(1.0);
  } else {
    w = at::full({logits.size(0), 1}, 1.0 / static_cast<double>(std::max<int64_t>(1, logits.size(0))), probs.options());
  }
  SwitchTerms t;
  {
    at::NoGradGuard no_grad;
    const auto top = std::get<1>(probs.detach().topk(top_k, -1));  // [N, K]
    const auto one_hot = at::one_hot(top, E).to(at::kFloat);       // [N, K, E]
    t.f = (one_hot * w.unsqueeze(-1)).sum(0);                      // [K, E]
  }
  t.p = (probs * w).sum(0);  // [E]
  return t;
}

at::Tensor switch_aux_loss(const std::vector<SwitchTerms>& layers) {
  RLFT_CHECK(!layers.empty(), "switch_aux_loss: no MoE layers");
  at::Tensor f = layers[0].f, p = layers[0].p;
  for (size_t i = 1; i < layers.size(); ++i) {
    f = f + layers[i].f;
    p = p + layers[i].p;
  }
  const double L = static_cast<double>(layers.size());
  const int64_t E = p.size(0);
  return (f / L * (p / L).unsqueeze(0)).sum() * static_cast<double>(E);
}

at::Tensor sequence_balance_loss(const at::Tensor& scores, const at::Tensor& indices, const at::Tensor& valid) {
  const int64_t E = scores.size(-1), K = indices.size(-1);
  const auto v = valid.to(at::kFloat);                                                           // [B, T]
  const auto n_tokens = v.sum(1);                                                                // [B]
  const auto normalised = scores / scores.sum(-1, /*keepdim=*/true);                             // s' [B, T, E]
  const auto P = (normalised * v.unsqueeze(-1)).sum(1) / n_tokens.clamp_min(1.0).unsqueeze(-1);  // [B, E]
  at::Tensor f;
  {
    at::NoGradGuard no_grad;
    const auto one_hot = at::one_hot(indices, E).to(at::kFloat).sum(2);  // [B, T, E]
    const auto counts = (one_hot * v.unsqueeze(-1)).sum(1);              // [B, E]
    f = counts * (static_cast<double>(E) / static_cast<double>(K)) / n_tokens.clamp_min(1.0).unsqueeze(-1);
  }
  const auto per_sequence = (f * P).sum(-1);  // [B]
  const auto has_tokens = (n_tokens > 0).to(at::kFloat);
  return (per_sequence * has_tokens).sum() / has_tokens.sum().clamp_min(1.0);
}

void update_router_bias_tensor(at::Tensor& bias, const at::Tensor& load, double gamma) {
  at::NoGradGuard no_grad;
  const auto l = load.to(at::kFloat).to(bias.device());
  bias.add_(at::sign(l.mean() - l).to(bias.scalar_type()), gamma);
}

}  // namespace rlft::policy
