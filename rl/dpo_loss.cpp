#include "rl/dpo_loss.h"

#include <fmt/format.h>

#include "core/config.h"
#include "core/enum_names.h"
#include "core/error.h"

namespace rlft::rl {
namespace {

constexpr EnumNames<DpoLoss, 3> kDpoLosses{
    {{DpoLoss::kSigmoid, "sigmoid"}, {DpoLoss::kIpo, "ipo"}, {DpoLoss::kSimpo, "simpo"}}};

// −(1 − ε) log σ(z) − ε log σ(−z)
at::Tensor smoothed_logistic(const at::Tensor& z, double eps) {
  auto loss = -at::log_sigmoid(z);
  if (eps > 0) loss = (1.0 - eps) * loss - eps * at::log_sigmoid(-z);
  return loss;
}

}  // namespace

DpoLoss parse_dpo_loss(const std::string& name) {
  if (auto l = enum_value(kDpoLosses, name)) return *l;
  throw Error(fmt::format("unknown DPO loss '{}': known losses are ipo, sigmoid, simpo", name));
}

const char* dpo_loss_name(DpoLoss loss) {
  return enum_name(kDpoLosses, loss);
}

DpoLossOptions DpoLossOptions::from_config(const ConfigView& s) {
  DpoLossOptions o;
  o.type = s.get_parsed("loss", dpo_loss_name(o.type), parse_dpo_loss);
  if (s.has("beta")) o.beta = s.get<double>("beta", 0.0);
  o.label_smoothing = s.get<double>("label_smoothing", o.label_smoothing);
  o.simpo_gamma = s.get<double>("simpo_gamma", o.simpo_gamma);
  return o;
}

void DpoLossOptions::validate() const {
  RLFT_CHECK_OPTION(beta_value() > 0, "beta", beta_value(), "must be > 0");
  RLFT_CHECK_OPTION(label_smoothing >= 0 && label_smoothing < 0.5, "label_smoothing", label_smoothing,
                    "must be in [0, 0.5)");
  RLFT_CHECK_OPTION(label_smoothing == 0 || type != DpoLoss::kIpo, "label_smoothing", label_smoothing,
                    "IPO has no label smoothing (sigmoid and simpo do); set it to 0");
  RLFT_CHECK_OPTION(simpo_gamma >= 0, "simpo_gamma", simpo_gamma, "must be >= 0");
}

DpoLossOutput dpo_loss(const DpoLossInput& in, const DpoLossOptions& o) {
  const double beta = o.beta_value();
  auto per_token = [&o](const at::Tensor& logp, const at::Tensor& tokens) {
    return o.length_normalised() ? logp / tokens.clamp_min(1.0) : logp;
  };
  const auto c = per_token(in.chosen_logp, in.chosen_tokens);
  const auto r = per_token(in.rejected_logp, in.rejected_tokens);
  DpoLossOutput out;
  if (o.type == DpoLoss::kSimpo) {
    out.loss = smoothed_logistic(beta * (c - r) - o.simpo_gamma, o.label_smoothing);
    out.chosen_rewards = (beta * c).detach();
    out.rejected_rewards = (beta * r).detach();
    return out;
  }
  RLFT_CHECK(in.ref_chosen_logp.defined() && in.ref_rejected_logp.defined(),
             "dpo loss {}: the reference log-probs are missing", dpo_loss_name(o.type));
  const auto hc = c - per_token(in.ref_chosen_logp, in.chosen_tokens);
  const auto hr = r - per_token(in.ref_rejected_logp, in.rejected_tokens);
  const auto delta = hc - hr;
  if (o.type == DpoLoss::kIpo)
    out.loss = (delta - 1.0 / (2.0 * beta)).pow(2);
  else
    out.loss = smoothed_logistic(beta * delta, o.label_smoothing);
  out.chosen_rewards = (beta * hc).detach();
  out.rejected_rewards = (beta * hr).detach();
  return out;
}

}  // namespace rlft::rl
