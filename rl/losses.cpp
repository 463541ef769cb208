#include "rl/losses.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace rlft::rl {
namespace {

void check_shape(const at::Tensor& t, const at::Tensor& like, const char* name) {
  RLFT_CHECK(t.defined(), "policy loss: {} is missing", name);
  RLFT_CHECK(t.sizes() == like.sizes(), "policy loss: {} has shape {}, expected {} like logp", name,
             fmt::format("{}", fmt::join(t.sizes(), "x")), fmt::format("{}", fmt::join(like.sizes(), "x")));
}

double mean_over(const at::Tensor& values, const at::Tensor& mask) {
  const double n = mask.sum().item<double>();
  return n > 0 ? (values * mask).sum().item<double>() / n : 0.0;
}

}  // namespace

KlEstimator parse_kl_estimator(const std::string& name) {
  if (name == "k1") return KlEstimator::kK1;
  if (name == "k2") return KlEstimator::kK2;
  if (name == "k3") return KlEstimator::kK3;
  throw Error(fmt::format("unknown KL estimator '{}': known estimators are k1, k2, k3", name));
}

LossAggregation parse_loss_aggregation(const std::string& name) {
  if (name == "token_mean") return LossAggregation::kTokenMean;
  if (name == "seq_mean_token_mean") return LossAggregation::kSeqMeanTokenMean;
  if (name == "seq_mean_token_sum_norm") return LossAggregation::kSeqMeanTokenSumNorm;
  throw Error(fmt::format(
      "unknown loss aggregation '{}': known aggregations are seq_mean_token_mean, seq_mean_token_sum_norm, token_mean",
      name));
}

RatioLevel parse_ratio_level(const std::string& name) {
  if (name == "token") return RatioLevel::kToken;
  if (name == "sequence") return RatioLevel::kSequence;
  throw Error(fmt::format("unknown ratio level '{}': known levels are sequence, token", name));
}

at::Tensor kl_estimate(const at::Tensor& logp, const at::Tensor& ref_logp, KlEstimator estimator) {
  const at::Tensor x = ref_logp.to(at::kFloat) - logp.to(at::kFloat);  // log(π_ref / π_θ)
  switch (estimator) {
    case KlEstimator::kK1:
      return -x;
    case KlEstimator::kK2:
      return 0.5 * x * x;
    case KlEstimator::kK3:
      return at::exp(x) - x - 1.0;
  }
  return x;
}

at::Tensor aggregate(const at::Tensor& values, const at::Tensor& mask, LossAggregation agg, double norm_tokens) {
  const at::Tensor m = mask.to(at::kFloat);
  const at::Tensor masked = values * m;  // [N, T]
  switch (agg) {
    case LossAggregation::kTokenMean:
      return masked.sum() / m.sum().clamp_min(1.0);
    case LossAggregation::kSeqMeanTokenMean:
      return (masked.sum(1) / m.sum(1).clamp_min(1.0)).mean();
    case LossAggregation::kSeqMeanTokenSumNorm:
      return (masked.sum(1) / norm_tokens).mean();
  }
  return masked.sum();
}

at::Tensor token_entropy(const at::Tensor& logits) {
  const at::Tensor logp = at::log_softmax(logits.to(at::kFloat), -1);
  return -(logp.exp() * logp).sum(-1);
}

void LossOptions::validate() const {
  RLFT_CHECK(clip_low > 0 && clip_low < 1, "clip_low = {}: must be in (0, 1)", clip_low);
  RLFT_CHECK(clip_high > 0, "clip_high = {}: must be > 0", clip_high);
  RLFT_CHECK(!dual_clip || *dual_clip > 1.0, "dual_clip = {}: must be > 1", dual_clip.value_or(0));
  RLFT_CHECK(norm_tokens > 0, "norm_tokens = {}: must be > 0", norm_tokens);
  RLFT_CHECK(kl_beta >= 0, "kl_beta = {}: must be >= 0", kl_beta);
  RLFT_CHECK(entropy_coef >= 0, "entropy_coef = {}: must be >= 0", entropy_coef);
  RLFT_CHECK(behaviour_is_cap >= 0, "behaviour_is_cap = {}: must be >= 0 (0 = off)", behaviour_is_cap);
}

LossOutput policy_loss(const LossInputs& in, const LossOptions& o) {
  o.validate();
  RLFT_CHECK(in.logp.defined() && in.logp.dim() == 2, "policy loss: logp must be [N, T]");
  check_shape(in.old_logp, in.logp, "old_logp");
  check_shape(in.mask, in.logp, "mask");
  const at::Tensor logp = in.logp.to(at::kFloat);  // [N, T]
  const at::Tensor old_logp = in.old_logp.to(at::kFloat).detach();
  const at::Tensor mask = in.mask.to(at::kFloat);  // [N, T]
  at::Tensor adv = in.advantages.to(at::kFloat).detach();
  if (adv.dim() == 1) adv = adv.unsqueeze(1).expand_as(logp);  // [N] → [N, T]
  check_shape(adv, in.logp, "advantages");

  const at::Tensor log_ratio = logp - old_logp;  // [N, T]
  at::Tensor ratio;
  if (o.ratio_level == RatioLevel::kToken) {
    ratio = at::exp(log_ratio);
  } else {
    // GSPO: s_i = exp(mean_t log ρ_t); per token sg[s_i]·π_θ/sg[π_θ] keeps s_i's value and
    // gives each token the gradient of its own log-probability.
    const at::Tensor seq = (log_ratio * mask).sum(1, true) / mask.sum(1, true).clamp_min(1.0);  // [N, 1]
    ratio = at::exp(seq.detach() + logp - logp.detach());
  }
  const at::Tensor clipped = at::clamp(ratio, 1.0 - o.clip_low, 1.0 + o.clip_high);
  const at::Tensor loss_unclipped = -adv * ratio;
  const at::Tensor loss_clipped = -adv * clipped;
  at::Tensor pg = at::maximum(loss_unclipped, loss_clipped);  // [N, T]
  if (o.dual_clip) pg = at::where(adv < 0, at::minimum(pg, -adv * *o.dual_clip), pg);
  if (o.behaviour_is_cap > 0) {
    RLFT_CHECK(in.behaviour_logp.defined(), "policy loss: behaviour_is_cap > 0 needs behaviour_logp");
    check_shape(in.behaviour_logp, in.logp, "behaviour_logp");
    const at::Tensor w = at::exp(old_logp - in.behaviour_logp.to(at::kFloat)).clamp_max(o.behaviour_is_cap);
    pg = pg * w.detach();
  }

  LossOutput out;
  const at::Tensor pg_agg = aggregate(pg, mask, o.aggregation, o.norm_tokens);
  at::Tensor total = pg_agg;
  if (o.kl_beta > 0) {
    check_shape(in.ref_logp, in.logp, "ref_logp");
    const at::Tensor kl = kl_estimate(logp, in.ref_logp.detach(), o.kl_estimator);
    total = total + o.kl_beta * aggregate(kl, mask, o.aggregation, o.norm_tokens);
    out.kl = mean_over(kl.detach(), mask);
  }
  if (o.entropy_coef > 0 || in.entropy.defined()) {
    check_shape(in.entropy, in.logp, "entropy");
    const at::Tensor h = in.entropy.to(at::kFloat);
    if (o.entropy_coef > 0) total = total - o.entropy_coef * aggregate(h, mask, o.aggregation, o.norm_tokens);
    out.entropy = mean_over(h.detach(), mask);
  }
  out.loss = total;
  out.policy_loss = pg_agg.item<double>();
  const at::Tensor was_clipped = (loss_clipped > loss_unclipped).to(at::kFloat).detach();  // max took the clipped side
  out.clip_fraction = mean_over(was_clipped, mask);
  out.ratio_mean = mean_over(ratio.detach(), mask);
  out.approx_kl_old = mean_over(kl_estimate(logp.detach(), old_logp, KlEstimator::kK3), mask);
  return out;
}

}  // namespace rlft::rl
