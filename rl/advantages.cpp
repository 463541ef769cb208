#include "rl/advantages.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <functional>
#include <map>

#include "core/config.h"
#include "core/enum_names.h"
#include "core/error.h"
#include "core/registry.h"

namespace rlft::rl {
namespace {

struct Estimator {
  AdvantageScale default_scale;
  /// [P, G] float64 rewards → [P, G] baseline-subtracted values.
  std::function<at::Tensor(const at::Tensor&)> centre;
};

at::Tensor group_centred(const at::Tensor& r) {
  return r - r.mean(1, /*keepdim=*/true);
}

const Registry<Estimator>& estimators() {
  static const Registry<Estimator> reg = [] {
    Registry<Estimator> r("advantage estimator");
    r.add("grpo", {AdvantageScale::kGroup, group_centred});
    r.add("dr_grpo", {AdvantageScale::kNone, group_centred});
    r.add("rloo", {AdvantageScale::kNone, [](const at::Tensor& x) {
                     const double g = static_cast<double>(x.size(1));
                     // r_i − (Σ_j r_j − r_i)/(G−1), written as G/(G−1)·(r_i − mean)
                     return group_centred(x) * (g / (g - 1.0));
                   }});
    r.add("reinforce_pp", {AdvantageScale::kWhitenTokens, group_centred});
    return r;
  }();
  return reg;
}

constexpr EnumNames<AdvantageScale, 5> kScales{{{AdvantageScale::kGroup, "group"},
                                                {AdvantageScale::kBatch, "batch"},
                                                {AdvantageScale::kWhiten, "whiten"},
                                                {AdvantageScale::kWhitenTokens, "whiten_tokens"},
                                                {AdvantageScale::kNone, "none"}}};

}  // namespace

AdvantageScale parse_advantage_scale(const std::string& name) {
  if (auto scale = enum_value(kScales, name)) return *scale;
  throw Error(
      fmt::format("unknown advantage scale '{}': known scales are batch, group, none, whiten, whiten_tokens", name));
}

const char* advantage_scale_name(AdvantageScale scale) {
  return enum_name(kScales, scale);
}

std::vector<std::string> advantage_estimators() {
  return estimators().names();
}

AdvantageOptions AdvantageOptions::from_config(const ConfigView& s) {
  AdvantageOptions o;
  o.estimator = s.get<std::string>("estimator", o.estimator);
  o.scale = s.get_parsed("scale", o.scale ? advantage_scale_name(*o.scale) : "default",
                         [](const std::string& name) -> std::optional<AdvantageScale> {
                           if (name == "default") return std::nullopt;
                           return parse_advantage_scale(name);
                         });
  o.eps = s.get<double>("eps", o.eps);
  return o;
}

void AdvantageOptions::validate() const {
  RLFT_CHECK_OPTION(estimators().contains(estimator), "estimator", estimator, "known estimators are {}",
                    fmt::join(advantage_estimators(), ", "));
  RLFT_CHECK_OPTION(eps > 0, "eps", eps, "must be > 0");
}

Advantages compute_advantages(const at::Tensor& rewards, const AdvantageOptions& options, const at::Tensor& tokens) {
  options.validate();
  RLFT_CHECK(rewards.dim() == 2, "rewards must be [P, G], got {} dimensions", rewards.dim());
  RLFT_CHECK(rewards.size(1) >= 2, "a group needs at least 2 completions to compare, got G = {}", rewards.size(1));
  const Estimator& est = estimators().get(options.estimator);
  const at::Tensor r = rewards.to(at::kDouble);          // [P, G]
  const at::Tensor zero_var = (r.amax(1) == r.amin(1));  // [P]
  at::Tensor a = est.centre(r);                          // [P, G]
  a.masked_fill_(zero_var.unsqueeze(1), 0.0);            // exactly 0, not rounding noise
  // Whitening with weights w (1 per sequence, or its token count): (a − mean_w) / (std_w + eps),
  // the unbiased std of the values repeated w times.
  auto whiten = [&](const at::Tensor& w) {
    const double n = w.sum().item<double>();
    if (n <= 1) return;
    const at::Tensor mean = (a * w).sum() / n;
    const at::Tensor var = ((a - mean).pow(2) * w).sum() / (n - 1);
    a = (a - mean) / (var.sqrt() + options.eps);
    a.masked_fill_(zero_var.unsqueeze(1), 0.0);
  };
  switch (options.scale.value_or(est.default_scale)) {
    case AdvantageScale::kGroup:
      a = a / (r.std(1, /*unbiased=*/true, /*keepdim=*/true) + options.eps);
      break;
    case AdvantageScale::kBatch:
      if (r.numel() > 1) a = a / (r.flatten().std(/*unbiased=*/true) + options.eps);
      break;
    case AdvantageScale::kWhiten:
      whiten(at::ones_like(a));
      break;
    case AdvantageScale::kWhitenTokens:
      RLFT_CHECK(tokens.defined() && tokens.sizes() == rewards.sizes(),
                 "advantage scale whiten_tokens needs the completions' token counts [P, G]");
      whiten(tokens.to(at::kDouble));
      break;
    case AdvantageScale::kNone:
      break;
  }
  Advantages out;
  out.values = a.to(at::kFloat);
  out.zero_variance = zero_var;
  out.n_zero_variance = zero_var.sum().item<int64_t>();
  return out;
}

}  // namespace rlft::rl
