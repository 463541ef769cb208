#include "rl/losses.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/config.h"
#include "core/enum_names.h"
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

constexpr EnumNames<KlEstimator, 3> kKlEstimators{
    {{KlEstimator::kK1, "k1"}, {KlEstimator::kK2, "k2"}, {KlEstimator::kK3, "k3"}}};
constexpr EnumNames<LossAggregation, 3> kAggregations{
    {{LossAggregation::kTokenMean, "token_mean"},
     {LossAggregation::kSeqMeanTokenMean, "seq_mean_token_mean"},
     {LossAggregation::kSeqMeanTokenSumNorm, "seq_mean_token_sum_norm"}}};
constexpr EnumNames<RatioLevel, 2> kRatioLevels{{{RatioLevel::kToken, "token"}, {RatioLevel::kSequence, "sequence"}}};

}  // namespace

KlEstimator parse_kl_estimator(const std::string& name) {
  if (auto e = enum_value(kKlEstimators, name)) return *e;
  throw Error(fmt::format("unknown KL estimator '{}': known estimators are k1, k2, k3", name));
}

LossAggregation parse_loss_aggregation(const std::string& name) {
  if (auto a = enum_value(kAggregations, name)) return *a;
  throw Error(fmt::format(
      "unknown loss aggregation '{}': known aggregations are seq_mean_token_mean, seq_mean_token_sum_norm, token_mean",
      name));
}

RatioLevel parse_ratio_level(const std::string& name) {
  if (auto l = enum_value(kRatioLevels, name)) return *l;
  throw Error(fmt::format("unknown ratio level '{}': known levels are sequence, token", name));
}

const char* kl_estimator_name(KlEstimator estimator) {
  return enum_name(kKlEstimators, estimator);
}
const char* loss_aggregation_name(LossAggregation aggregation) {
  return enum_name(kAggregations, aggregation);
}
const char* ratio_level_name(RatioLevel level) {
  return enum_name(kRatioLevels, level);
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

LossOptions LossOptions::from_config(const ConfigView& s, const LossOptions& fallback) {
  LossOptions o = fallback;
  o.clip_low = s.get<double>("clip_low", o.clip_low);
  o.clip_high = s.get<double>("clip_high", o.clip_high);
  const double dual = s.get<double>("dual_clip", o.dual_clip.value_or(0.0));
  o.dual_clip = dual > 0 ? std::optional<double>(dual) : std::nullopt;
  o.ratio_level = s.get_parsed("ratio_level", ratio_level_name(o.ratio_level), parse_ratio_level);
  o.aggregation = s.get_parsed("aggregation", loss_aggregation_name(o.aggregation), parse_loss_aggregation);
  o.norm_tokens = s.get<double>("norm_tokens", o.norm_tokens);
  o.kl_beta = s.get<double>("kl_beta", o.kl_beta);
  o.kl_estimator = s.get_parsed("kl_estimator", kl_estimator_name(o.kl_estimator), parse_kl_estimator);
  o.entropy_coef = s.get<double>("entropy_coef", o.entropy_coef);
  o.behaviour_is_cap = s.get<double>("behaviour_is_cap", o.behaviour_is_cap);
  return o;
}

void LossOptions::validate() const {
  RLFT_CHECK_OPTION(clip_low > 0 && clip_low < 1, "clip_low", clip_low, "must be in (0, 1)");
  RLFT_CHECK_OPTION(clip_high > 0, "clip_high", clip_high, "must be > 0");
  RLFT_CHECK_OPTION(!dual_clip || *dual_clip > 1.0, "dual_clip", dual_clip.value_or(0), "must be > 1");
  RLFT_CHECK_OPTION(norm_tokens > 0, "norm_tokens", norm_tokens, "must be > 0");
  RLFT_CHECK_OPTION(kl_beta >= 0, "kl_beta", kl_beta, "must be >= 0");
  RLFT_CHECK_OPTION(entropy_coef >= 0, "entropy_coef", entropy_coef, "must be >= 0");
  RLFT_CHECK_OPTION(behaviour_is_cap >= 0, "behaviour_is_cap", behaviour_is_cap, "must be >= 0 (0 = off)");
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
  double out_is_capped = 0.0;
  if (o.behaviour_is_cap > 0) {
    RLFT_CHECK(in.behaviour_logp.defined(), "policy loss: behaviour_is_cap > 0 needs behaviour_logp");
    check_shape(in.behaviour_logp, in.logp, "behaviour_logp");
    const at::Tensor raw = at::exp(old_logp - in.behaviour_logp.to(at::kFloat));
    const at::Tensor w = raw.clamp_max(o.behaviour_is_cap);
    pg = pg * w.detach();
    out_is_capped = mean_over((raw > o.behaviour_is_cap).to(at::kFloat).detach(), mask);
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
  out.is_capped_fraction = out_is_capped;
  return out;
}

}  // namespace rlft::rl
