#include "rl/train_options.h"

#include <fmt/format.h>

#include "core/config.h"
#include "core/error.h"

namespace rlft::rl {
namespace {

// Runs `parse` and re-throws a plain rlft::Error as a ConfigError located at `key`.
template <typename F>
auto located(const ConfigView& s, const std::string& key, F&& parse) {
  try {
    return parse();
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    s.check(false, key, e.what());
    throw;  // not reached
  }
}

rollout::SamplingOptions read_sampling(const ConfigView& s) {
  rollout::SamplingOptions o;
  o.temperature = s.get<double>("temperature", o.temperature);
  o.top_k = s.get<int64_t>("top_k", o.top_k);
  o.top_p = s.get<double>("top_p", o.top_p);
  o.min_p = s.get<double>("min_p", o.min_p);
  o.repetition_penalty = s.get<double>("repetition_penalty", o.repetition_penalty);
  o.presence_penalty = s.get<double>("presence_penalty", o.presence_penalty);
  s.check(o.temperature >= 0, "temperature", "must be >= 0 (0 = greedy)");
  s.check(o.top_p > 0 && o.top_p <= 1, "top_p", "must be in (0, 1]");
  s.check(o.top_k >= 0, "top_k", "must be >= 0");
  s.check(o.min_p >= 0 && o.min_p < 1, "min_p", "must be in [0, 1)");
  s.check(o.repetition_penalty > 0, "repetition_penalty", "must be > 0");
  return o;
}

policy::BalanceLossOptions read_balance(const ConfigView& s) {
  policy::BalanceLossOptions b;
  b.switch_coef = s.get<double>("switch_coef", b.switch_coef);
  b.seq_alpha = s.get<double>("seq_alpha", b.seq_alpha);
  s.check(b.switch_coef >= 0, "switch_coef", "must be >= 0");
  s.check(b.seq_alpha >= 0, "seq_alpha", "must be >= 0");
  return b;
}

}  // namespace

PolicySource PolicySource::from_config(const ConfigView& s) {
  PolicySource p;
  p.path = s.get<std::string>("path", p.path);
  p.mtp = s.get<bool>("mtp", p.mtp);
  return p;
}

TokenizerSource TokenizerSource::from_config(const ConfigView& s) {
  TokenizerSource t;
  t.path = s.get<std::string>("path", t.path);
  t.vocab_size = s.get<int>("vocab_size", t.vocab_size);
  t.special_tokens = s.get<std::vector<std::string>>("special_tokens", t.special_tokens);
  t.eos_token = s.get<std::string>("eos_token", t.eos_token);
  s.check(t.vocab_size >= 257, "vocab_size", "must be >= 257 (256 byte symbols and a special token)");
  s.check(!t.eos_token.empty(), "eos_token", "must name a token");
  return t;
}

const char* compute_name(Compute c) {
  switch (c) {
    case Compute::kFp32: return "fp32";
    case Compute::kBf16: return "bf16";
    case Compute::kFp16: return "fp16";
  }
  return "?";
}

PrecisionOptions PrecisionOptions::from_config(const ConfigView& s) {
  PrecisionOptions p;
  const auto compute = s.get<std::string>("compute", "fp32");
  if (compute == "fp32") p.compute = Compute::kFp32;
  else if (compute == "bf16") p.compute = Compute::kBf16;
  else if (compute == "fp16") p.compute = Compute::kFp16;
  else s.check(false, "compute", "expected fp32, bf16 or fp16");
  const auto scaling = s.get<std::string>("loss_scaling", "auto");
  s.check(scaling == "auto" || scaling == "on" || scaling == "off", "loss_scaling", "expected auto, on or off");
  p.loss_scaling = scaling == "on" || (scaling == "auto" && p.compute == Compute::kFp16);
  p.scale.init_scale = s.get<double>("init_scale", p.scale.init_scale);
  p.scale.growth_interval = s.get<int64_t>("growth_interval", p.scale.growth_interval);
  p.scale.growth_factor = s.get<double>("growth_factor", p.scale.growth_factor);
  p.scale.backoff_factor = s.get<double>("backoff_factor", p.scale.backoff_factor);
  located(s, "init_scale", [&] { p.scale.validate(); return 0; });
  p.max_consecutive_skips = s.get<int64_t>("max_consecutive_skips", p.max_consecutive_skips);
  s.check(p.max_consecutive_skips >= 1, "max_consecutive_skips", "must be >= 1");
  p.inject_nonfinite = s.get<std::vector<int64_t>>("inject_nonfinite", {});
  return p;
}

OptimOptions OptimOptions::from_config(const ConfigView& s) {
  OptimOptions o;
  o.adamw.beta1 = s.get<double>("beta1", o.adamw.beta1);
  o.adamw.beta2 = s.get<double>("beta2", o.adamw.beta2);
  o.adamw.eps = s.get<double>("eps", o.adamw.eps);
  o.adamw.weight_decay = s.get<double>("weight_decay", o.adamw.weight_decay);
  o.adamw.max_grad_norm = s.get<double>("max_grad_norm", o.adamw.max_grad_norm);
  located(s, "beta1", [&] { o.adamw.validate(); return 0; });
  o.schedule.lr = s.get<double>("lr", 1e-5);
  o.schedule.kind = s.get<std::string>("schedule", "cosine");
  o.schedule.warmup_steps = s.get<int64_t>("warmup_steps", 0);
  o.schedule.min_lr_ratio = s.get<double>("min_lr_ratio", 0.1);
  o.schedule.total_steps = 0;
  s.check(o.schedule.kind == "cosine" || o.schedule.kind == "constant", "schedule", "expected cosine or constant");
  s.check(o.schedule.lr > 0, "lr", "must be > 0");
  s.check(o.schedule.warmup_steps >= 0, "warmup_steps", "must be >= 0");
  s.check(o.schedule.min_lr_ratio >= 0 && o.schedule.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]");
  return o;
}

DistributedOptions DistributedOptions::from_config(const ConfigView& s) {
  DistributedOptions d;
  d.group.backend = s.get<std::string>("backend", d.group.backend);
  d.group.timeout_s = s.get<double>("timeout_s", d.group.timeout_s);
  d.bucket_mb = s.get<double>("bucket_mb", d.bucket_mb);
  s.check(d.group.backend == "auto" || d.group.backend == "gloo" || d.group.backend == "nccl", "backend",
          "must be auto, gloo or nccl");
  s.check(d.group.timeout_s > 0, "timeout_s", "must be > 0 (seconds a collective may wait for the other ranks)");
  s.check(d.bucket_mb > 0, "bucket_mb", "must be > 0");
  return d;
}

CheckpointOptions CheckpointOptions::from_config(const ConfigView& s) {
  CheckpointOptions c;
  c.every = s.get<int64_t>("every", c.every);
  c.keep = s.get<int64_t>("keep", c.keep);
  s.check(c.every >= 0, "every", "must be >= 0 (0 = only at the end)");
  s.check(c.keep >= 1, "keep", "must be >= 1");
  return c;
}

EvalOptions EvalOptions::from_config(const ConfigView& s) {
  EvalOptions e;
  e.enabled = s.get<bool>("enabled", e.enabled);
  e.every = s.get<int64_t>("every", e.every);
  e.size = s.get<int64_t>("size", e.size);
  e.samples = s.get<int64_t>("samples", e.samples);
  e.temperature = s.get<double>("temperature", e.temperature);
  e.max_new_tokens = s.get<int64_t>("max_new_tokens", e.max_new_tokens);
  e.accuracy_reward = s.get<std::string>("accuracy_reward", e.accuracy_reward);
  e.accuracy_threshold = s.get<double>("accuracy_threshold", e.accuracy_threshold);
  e.batch_rows = s.get<int64_t>("batch_rows", e.batch_rows);
  s.check(e.every >= 0, "every", "must be >= 0");
  s.check(e.size >= 0, "size", "must be >= 0 (0 = the whole eval split)");
  s.check(e.samples >= 1, "samples", "must be >= 1");
  s.check(e.temperature >= 0, "temperature", "must be >= 0 (0 = greedy)");
  s.check(e.samples == 1 || e.temperature > 0, "samples", "more than one sample per prompt needs temperature > 0");
  s.check(e.max_new_tokens >= 0, "max_new_tokens", "must be >= 0");
  s.check(e.batch_rows >= 1, "batch_rows", "must be >= 1");
  return e;
}

GrpoOptions GrpoOptions::from_config(const ConfigView& s) {
  GrpoOptions g;
  g.steps = s.get<int64_t>("steps", g.steps);
  g.prompts_per_step = s.get<int64_t>("prompts_per_step", g.prompts_per_step);
  g.group_size = s.get<int64_t>("group_size", g.group_size);
  g.max_new_tokens = s.get<int64_t>("max_new_tokens", g.max_new_tokens);
  s.check(g.steps >= 1, "steps", "must be >= 1");
  s.check(g.prompts_per_step >= 1, "prompts_per_step", "must be >= 1");
  s.check(g.group_size >= 2, "group_size", "must be >= 2 (advantages are relative to the group)");
  s.check(g.max_new_tokens >= 1, "max_new_tokens", "must be >= 1");
  g.sampling = read_sampling(s.section("sampling"));
  s.check(g.sampling.temperature > 0, "sampling.temperature", "GRPO samples: must be > 0");
  g.stop_strings = s.get<std::vector<std::string>>("stop_strings", {});

  const auto a = s.section("advantage");
  g.advantage.estimator = a.get<std::string>("estimator", g.advantage.estimator);
  const auto scale = a.get<std::string>("scale", "default");
  if (scale != "default") g.advantage.scale = located(a, "scale", [&] { return parse_advantage_scale(scale); });
  g.advantage.eps = a.get<double>("eps", g.advantage.eps);
  located(a, "estimator", [&] { g.advantage.validate(); return 0; });

  const auto l = s.section("loss");
  g.loss.clip_low = l.get<double>("clip_low", g.loss.clip_low);
  g.loss.clip_high = l.get<double>("clip_high", g.loss.clip_high);
  const double dual = l.get<double>("dual_clip", 0.0);
  if (dual > 0) g.loss.dual_clip = dual;
  g.loss.ratio_level = located(l, "ratio_level", [&] { return parse_ratio_level(l.get<std::string>("ratio_level", "token")); });
  g.loss.aggregation = located(l, "aggregation", [&] {
    return parse_loss_aggregation(l.get<std::string>("aggregation", "seq_mean_token_mean"));
  });
  g.loss.norm_tokens = l.get<double>("norm_tokens", static_cast<double>(g.max_new_tokens));
  g.loss.kl_beta = l.get<double>("kl_beta", 0.0);
  g.loss.kl_estimator =
      located(l, "kl_estimator", [&] { return parse_kl_estimator(l.get<std::string>("kl_estimator", "k3")); });
  g.loss.entropy_coef = l.get<double>("entropy_coef", 0.0);
  g.kl_in_reward = l.get<bool>("kl_in_reward", g.kl_in_reward);
  located(l, "clip_low", [&] { g.loss.validate(); return 0; });

  g.epochs = s.get<int64_t>("epochs", g.epochs);
  g.mini_batches = s.get<int64_t>("mini_batches", g.mini_batches);
  g.micro_batch_rows = s.get<int64_t>("micro_batch_rows", g.micro_batch_rows);
  s.check(g.epochs >= 1, "epochs", "must be >= 1");
  s.check(g.mini_batches >= 1, "mini_batches", "must be >= 1");
  s.check(g.prompts_per_step % g.mini_batches == 0, "mini_batches", "must divide prompts_per_step (groups stay whole)");
  s.check(g.micro_batch_rows >= 0, "micro_batch_rows", "must be >= 0");
  g.mask_truncated = s.get<bool>("mask_truncated", g.mask_truncated);
  g.dynamic_sampling = s.get<bool>("dynamic_sampling", g.dynamic_sampling);
  g.max_resample_rounds = s.get<int64_t>("max_resample_rounds", g.max_resample_rounds);
  s.check(g.max_resample_rounds >= 0, "max_resample_rounds", "must be >= 0");
  g.routing_replay = s.get<bool>("routing_replay", g.routing_replay);
  g.recompute_old_logp = s.get<bool>("recompute_old_logp", g.recompute_old_logp);
  g.router_bias_gamma = s.get<double>("router_bias_gamma", g.router_bias_gamma);
  s.check(g.router_bias_gamma >= 0, "router_bias_gamma", "must be >= 0");
  g.balance = read_balance(s.section("balance"));
  g.log_rollouts = s.get<int64_t>("log_rollouts", g.log_rollouts);
  s.check(g.log_rollouts >= 0, "log_rollouts", "must be >= 0");
  return g;
}

SftOptions SftOptions::from_config(const ConfigView& s) {
  SftOptions o;
  o.steps = s.get<int64_t>("steps", o.steps);
  o.epochs = s.get<double>("epochs", o.epochs);
  o.batch_size = s.get<int64_t>("batch_size", o.batch_size);
  o.mtp_weight = s.get<double>("mtp_weight", o.mtp_weight);
  o.router_bias_gamma = s.get<double>("router_bias_gamma", o.router_bias_gamma);
  o.log_every = s.get<int64_t>("log_every", o.log_every);
  o.balance = read_balance(s.section("balance"));
  s.check(o.steps >= 0, "steps", "must be >= 0 (0 = epochs)");
  s.check(o.epochs > 0, "epochs", "must be > 0");
  s.check(o.batch_size >= 1, "batch_size", "must be >= 1");
  s.check(o.mtp_weight >= 0, "mtp_weight", "must be >= 0");
  s.check(o.router_bias_gamma >= 0, "router_bias_gamma", "must be >= 0");
  s.check(o.log_every >= 1, "log_every", "must be >= 1");
  return o;
}

RmOptions RmOptions::from_config(const ConfigView& s) {
  RmOptions o;
  o.pairs = s.get<std::string>("pairs", o.pairs);
  o.format = s.get<std::string>("format", o.format);
  o.source_file = s.get<std::string>("source_file", o.source_file);
  o.steps = s.get<int64_t>("steps", o.steps);
  o.batch_size = s.get<int64_t>("batch_size", o.batch_size);
  o.eval_fraction = s.get<double>("eval_fraction", o.eval_fraction);
  o.eval_every = s.get<int64_t>("eval_every", o.eval_every);
  o.use_margin = s.get<bool>("use_margin", o.use_margin);
  o.center_coef = s.get<double>("center_coef", o.center_coef);
  o.max_length = s.get<int64_t>("max_length", o.max_length);
  o.log_every = s.get<int64_t>("log_every", o.log_every);
  s.check(!o.pairs.empty(), "pairs", "\"store\" or a JSONL file");
  s.check(o.steps >= 1, "steps", "must be >= 1");
  s.check(o.batch_size >= 1, "batch_size", "must be >= 1");
  s.check(o.eval_fraction >= 0 && o.eval_fraction < 1, "eval_fraction", "must be in [0, 1)");
  s.check(o.eval_every >= 0, "eval_every", "must be >= 0 (0 = at the end only)");
  s.check(o.center_coef >= 0, "center_coef", "must be >= 0");
  s.check(o.max_length >= 0, "max_length", "must be >= 0 (0 = no limit)");
  s.check(o.log_every >= 1, "log_every", "must be >= 1");
  return o;
}

}  // namespace rlft::rl
