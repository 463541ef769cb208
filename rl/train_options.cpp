#include "rl/train_options.h"

#include <fmt/format.h>

#include "core/config.h"
#include "core/enum_names.h"
#include "core/error.h"

namespace rlft::rl {

PolicySource PolicySource::from_config(const ConfigView& s) {
  PolicySource p;
  p.path = s.get<std::string>("path", p.path);
  p.mtp = s.get<bool>("mtp", p.mtp);
  p.adapter = s.get<std::string>("adapter", p.adapter);
  return p;
}

TokenizerSource TokenizerSource::from_config(const ConfigView& s) {
  TokenizerSource t;
  t.path = s.get<std::string>("path", t.path);
  t.vocab_size = s.get<int>("vocab_size", t.vocab_size);
  t.special_tokens = s.get<std::vector<std::string>>("special_tokens", t.special_tokens);
  t.eos_given = s.has("eos_token");
  t.eos_token = s.get<std::string>("eos_token", t.eos_token);
  return t;
}

void TokenizerSource::validate() const {
  RLFT_CHECK_OPTION(vocab_size >= 257, "vocab_size", vocab_size,
                    "must be >= 257 (256 byte symbols and a special token)");
  RLFT_CHECK_OPTION(!eos_token.empty(), "eos_token", eos_token, "must name a token");
}

namespace {

constexpr EnumNames<Compute, 3> kComputes{
    {{Compute::kFp32, "fp32"}, {Compute::kBf16, "bf16"}, {Compute::kFp16, "fp16"}}};

}  // namespace

const char* compute_name(Compute c) {
  return enum_name(kComputes, c);
}

Compute parse_compute(const std::string& name) {
  if (auto c = enum_value(kComputes, name)) return *c;
  throw Error("expected fp32, bf16 or fp16");
}

PrecisionOptions PrecisionOptions::from_config(const ConfigView& s) {
  PrecisionOptions p;
  p.compute = s.get_parsed("compute", compute_name(p.compute), parse_compute);
  // `auto` is YAML's name for "decided by compute", so the struct's flag cannot be the fallback.
  p.loss_scaling = s.get_parsed("loss_scaling", "auto", [&](const std::string& scaling) {
    if (scaling != "auto" && scaling != "on" && scaling != "off") throw Error("expected auto, on or off");
    return scaling == "on" || (scaling == "auto" && p.compute == Compute::kFp16);
  });
  p.scale.init_scale = s.get<double>("init_scale", p.scale.init_scale);
  p.scale.growth_interval = s.get<int64_t>("growth_interval", p.scale.growth_interval);
  p.scale.growth_factor = s.get<double>("growth_factor", p.scale.growth_factor);
  p.scale.backoff_factor = s.get<double>("backoff_factor", p.scale.backoff_factor);
  p.max_consecutive_skips = s.get<int64_t>("max_consecutive_skips", p.max_consecutive_skips);
  p.inject_nonfinite = s.get<std::vector<int64_t>>("inject_nonfinite", p.inject_nonfinite);
  return p;
}

void PrecisionOptions::validate() const {
  scale.validate();
  RLFT_CHECK_OPTION(max_consecutive_skips >= 1, "max_consecutive_skips", max_consecutive_skips, "must be >= 1");
}

OptimOptions OptimOptions::from_config(const ConfigView& s) {
  OptimOptions o;
  o.adamw.beta1 = s.get<double>("beta1", o.adamw.beta1);
  o.adamw.beta2 = s.get<double>("beta2", o.adamw.beta2);
  o.adamw.eps = s.get<double>("eps", o.adamw.eps);
  o.adamw.weight_decay = s.get<double>("weight_decay", o.adamw.weight_decay);
  o.adamw.max_grad_norm = s.get<double>("max_grad_norm", o.adamw.max_grad_norm);
  o.schedule.lr = s.get<double>("lr", o.schedule.lr);
  o.schedule.kind = s.get<std::string>("schedule", o.schedule.kind);
  o.schedule.warmup_steps = s.get<int64_t>("warmup_steps", o.schedule.warmup_steps);
  o.schedule.min_lr_ratio = s.get<double>("min_lr_ratio", o.schedule.min_lr_ratio);
  return o;
}

void OptimOptions::validate() const {
  adamw.validate();
  try {
    schedule.validate();
  } catch (const OptionError& e) {
    if (e.key() == "kind") throw e.renamed("schedule");
    throw;
  }
}

DistributedOptions DistributedOptions::from_config(const ConfigView& s) {
  DistributedOptions d;
  d.group = dist::Options::from_config(s);
  d.bucket_mb = s.get<double>("bucket_mb", d.bucket_mb);
  d.rollout_ranks = s.get<int64_t>("rollout_ranks", d.rollout_ranks);
  return d;
}

void DistributedOptions::validate() const {
  group.validate();
  RLFT_CHECK_OPTION(bucket_mb > 0, "bucket_mb", bucket_mb, "must be > 0");
  RLFT_CHECK_OPTION(rollout_ranks >= 0, "rollout_ranks", rollout_ranks, "must be >= 0 (0 = every rank trains)");
}

CheckpointOptions CheckpointOptions::from_config(const ConfigView& s) {
  CheckpointOptions c;
  c.every = s.get<int64_t>("every", c.every);
  c.keep = s.get<int64_t>("keep", c.keep);
  return c;
}

void CheckpointOptions::validate() const {
  RLFT_CHECK_OPTION(every >= 0, "every", every, "must be >= 0 (0 = only at the end)");
  RLFT_CHECK_OPTION(keep >= 1, "keep", keep, "must be >= 1");
}

MemoryOptions MemoryOptions::from_config(const ConfigView& s) {
  MemoryOptions o;
  o.logits_chunk_mb = s.get<double>("logits_chunk_mb", o.logits_chunk_mb);
  o.activation_checkpointing = s.get<bool>("activation_checkpointing", o.activation_checkpointing);
  o.check_fit = s.get<bool>("check_fit", o.check_fit);
  return o;
}

void MemoryOptions::validate() const {
  RLFT_CHECK_OPTION(logits_chunk_mb > 0, "logits_chunk_mb", logits_chunk_mb, "must be > 0");
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
  return e;
}

void EvalOptions::validate() const {
  RLFT_CHECK_OPTION(every >= 0, "every", every, "must be >= 0");
  RLFT_CHECK_OPTION(size >= 0, "size", size, "must be >= 0 (0 = the whole eval split)");
  RLFT_CHECK_OPTION(samples >= 1, "samples", samples, "must be >= 1");
  RLFT_CHECK_OPTION(temperature >= 0, "temperature", temperature, "must be >= 0 (0 = greedy)");
  RLFT_CHECK_OPTION(samples == 1 || temperature > 0, "samples", samples,
                    "more than one sample per prompt needs temperature > 0");
  RLFT_CHECK_OPTION(max_new_tokens >= 0, "max_new_tokens", max_new_tokens, "must be >= 0");
  RLFT_CHECK_OPTION(batch_rows >= 1, "batch_rows", batch_rows, "must be >= 1");
}

RolloutStageOptions RolloutStageOptions::from_config(const ConfigView& s) {
  RolloutStageOptions o;
  o.mode = s.get<std::string>("mode", o.mode);
  o.max_staleness = s.get<int64_t>("max_staleness", o.max_staleness);
  o.workers = s.get<int64_t>("workers", o.workers);
  o.queue = s.get<int64_t>("queue", o.queue);
  o.threads = s.get<int64_t>("threads", o.threads);
  return o;
}

void RolloutStageOptions::validate() const {
  RLFT_CHECK_OPTION(mode == "sync" || mode == "async", "mode", mode, "must be sync or async");
  RLFT_CHECK_OPTION(max_staleness >= 0, "max_staleness", max_staleness, "must be >= 0 (steps of lag)");
  RLFT_CHECK_OPTION(workers >= 1, "workers", workers, "must be >= 1");
  RLFT_CHECK_OPTION(queue >= 0, "queue", queue, "must be >= 0 (0 = max_staleness, at least 1)");
  RLFT_CHECK_OPTION(threads >= 0, "threads", threads, "must be >= 0 (0 = the default)");
}

GrpoOptions GrpoOptions::from_config(const ConfigView& s) {
  GrpoOptions g;
  g.steps = s.get<int64_t>("steps", g.steps);
  g.prompts_per_step = s.get<int64_t>("prompts_per_step", g.prompts_per_step);
  g.group_size = s.get<int64_t>("group_size", g.group_size);
  g.max_new_tokens = s.get<int64_t>("max_new_tokens", g.max_new_tokens);
  g.sampling = rollout::SamplingOptions::from_config(s.section("sampling"));
  g.speculative_tokens = s.get<int64_t>("speculative_tokens", g.speculative_tokens);
  g.stop_strings = s.get<std::vector<std::string>>("stop_strings", g.stop_strings);
  g.advantage = AdvantageOptions::from_config(s.section("advantage"));
  const auto loss = s.section("loss");
  const bool cap_given = loss.has("behaviour_is_cap");
  LossOptions loss_fallback = g.loss;
  loss_fallback.norm_tokens = static_cast<double>(g.max_new_tokens);
  g.loss = LossOptions::from_config(loss, loss_fallback);
  g.kl_in_reward = loss.get<bool>("kl_in_reward", g.kl_in_reward);
  g.epochs = s.get<int64_t>("epochs", g.epochs);
  g.mini_batches = s.get<int64_t>("mini_batches", g.mini_batches);
  g.micro_batch_rows = s.get<int64_t>("micro_batch_rows", g.micro_batch_rows);
  g.micro_batch_tokens = s.get<int64_t>("micro_batch_tokens", g.micro_batch_tokens);
  g.mask_truncated = s.get<bool>("mask_truncated", g.mask_truncated);
  g.dynamic_sampling = s.get<bool>("dynamic_sampling", g.dynamic_sampling);
  g.max_resample_rounds = s.get<int64_t>("max_resample_rounds", g.max_resample_rounds);
  g.routing_replay = s.get<bool>("routing_replay", g.routing_replay);
  g.recompute_old_logp = s.get_parsed("recompute_old_logp", "auto", [](const std::string& v) -> std::optional<bool> {
    if (v == "auto") return std::nullopt;
    if (v == "true") return true;
    if (v == "false") return false;
    throw Error("must be auto, true or false");
  });
  g.router_bias_gamma = s.get<double>("router_bias_gamma", g.router_bias_gamma);
  g.ref_reset_every = s.get<int64_t>("ref_reset_every", g.ref_reset_every);
  g.ref_mixup_alpha = s.get<double>("ref_mixup_alpha", g.ref_mixup_alpha);
  g.balance = policy::BalanceLossOptions::from_config(s.section("balance"));
  g.log_rollouts = s.get<int64_t>("log_rollouts", g.log_rollouts);
  g.rollout = RolloutStageOptions::from_config(s.section("rollout"));
  // Async rollout samples with a stale policy: truncated importance sampling corrects it
  // unless the config says otherwise (TRL's vllm_importance_sampling_cap default).
  if (g.rollout.async() && !cap_given) g.loss.behaviour_is_cap = 2.0;
  return g;
}

void GrpoOptions::validate() const {
  RLFT_CHECK_OPTION(steps >= 1, "steps", steps, "must be >= 1");
  RLFT_CHECK_OPTION(prompts_per_step >= 1, "prompts_per_step", prompts_per_step, "must be >= 1");
  RLFT_CHECK_OPTION(group_size >= 2, "group_size", group_size, "must be >= 2 (advantages are relative to the group)");
  RLFT_CHECK_OPTION(max_new_tokens >= 1, "max_new_tokens", max_new_tokens, "must be >= 1");
  validate_within("sampling", sampling);
  RLFT_CHECK_OPTION(sampling.temperature > 0, "sampling.temperature", sampling.temperature,
                    "GRPO samples: must be > 0");
  RLFT_CHECK_OPTION(speculative_tokens >= 0 && speculative_tokens <= 15, "speculative_tokens", speculative_tokens,
                    "must be in 0..15 (0 = off)");
  RLFT_CHECK_OPTION(speculative_tokens == 0 || (sampling.repetition_penalty == 1.0 && sampling.presence_penalty == 0.0),
                    "speculative_tokens", speculative_tokens,
                    "not with sampling.repetition_penalty or sampling.presence_penalty (they change the distribution "
                    "after every drafted token)");
  validate_within("advantage", advantage);
  validate_within("loss", loss);
  RLFT_CHECK_OPTION(epochs >= 1, "epochs", epochs, "must be >= 1");
  RLFT_CHECK_OPTION(mini_batches >= 1, "mini_batches", mini_batches, "must be >= 1");
  RLFT_CHECK_OPTION(prompts_per_step % mini_batches == 0, "mini_batches", mini_batches,
                    "must divide prompts_per_step (groups stay whole)");
  RLFT_CHECK_OPTION(micro_batch_rows >= 0, "micro_batch_rows", micro_batch_rows, "must be >= 0");
  RLFT_CHECK_OPTION(micro_batch_tokens >= 0, "micro_batch_tokens", micro_batch_tokens, "must be >= 0 (0 = no limit)");
  RLFT_CHECK_OPTION(micro_batch_tokens == 0 || micro_batch_tokens > max_new_tokens, "micro_batch_tokens",
                    micro_batch_tokens, "must hold one sequence: more than max_new_tokens ({}) plus the prompt",
                    max_new_tokens);
  RLFT_CHECK_OPTION(max_resample_rounds >= 0, "max_resample_rounds", max_resample_rounds, "must be >= 0");
  RLFT_CHECK_OPTION(router_bias_gamma >= 0, "router_bias_gamma", router_bias_gamma, "must be >= 0");
  RLFT_CHECK_OPTION(ref_reset_every >= 0, "ref_reset_every", ref_reset_every, "must be >= 0 (0 = never)");
  RLFT_CHECK_OPTION(ref_reset_every == 0 || loss.kl_beta > 0, "ref_reset_every", ref_reset_every,
                    "resets the KL reference, and loss.kl_beta = 0 has none: set loss.kl_beta > 0 or this to 0");
  RLFT_CHECK_OPTION(ref_mixup_alpha > 0 && ref_mixup_alpha <= 1, "ref_mixup_alpha", ref_mixup_alpha,
                    "must be in (0, 1]");
  validate_within("balance", balance);
  RLFT_CHECK_OPTION(log_rollouts >= 0, "log_rollouts", log_rollouts, "must be >= 0");
  validate_within("rollout", rollout);
  if (rollout.async()) {
    RLFT_CHECK_OPTION(recompute_old_logp.value_or(true), "recompute_old_logp", "false",
                      "async rollout samples with a stale policy: the old log-probs must be the trainer's (auto or "
                      "true)");
    RLFT_CHECK_OPTION(!dynamic_sampling || rollout.workers == 1, "rollout.workers", rollout.workers,
                      "must be 1 with dynamic_sampling (a step's prompts then depend on the step before)");
  }
}

SftOptions SftOptions::from_config(const ConfigView& s) {
  SftOptions o;
  o.steps = s.get<int64_t>("steps", o.steps);
  o.epochs = s.get<double>("epochs", o.epochs);
  o.batch_size = s.get<int64_t>("batch_size", o.batch_size);
  o.mtp_weight = s.get<double>("mtp_weight", o.mtp_weight);
  o.router_bias_gamma = s.get<double>("router_bias_gamma", o.router_bias_gamma);
  o.log_every = s.get<int64_t>("log_every", o.log_every);
  o.train_on = s.get<std::string>("train_on", o.train_on);
  o.balance = policy::BalanceLossOptions::from_config(s.section("balance"));
  return o;
}

void SftOptions::validate() const {
  validate_within("balance", balance);
  RLFT_CHECK_OPTION(steps >= 0, "steps", steps, "must be >= 0 (0 = epochs)");
  RLFT_CHECK_OPTION(epochs > 0, "epochs", epochs, "must be > 0");
  RLFT_CHECK_OPTION(batch_size >= 1, "batch_size", batch_size, "must be >= 1");
  RLFT_CHECK_OPTION(mtp_weight >= 0, "mtp_weight", mtp_weight, "must be >= 0");
  RLFT_CHECK_OPTION(router_bias_gamma >= 0, "router_bias_gamma", router_bias_gamma, "must be >= 0");
  RLFT_CHECK_OPTION(log_every >= 1, "log_every", log_every, "must be >= 1");
  RLFT_CHECK_OPTION(train_on == "completion" || train_on == "assistant_turns", "train_on", train_on,
                    "must be completion or assistant_turns");
}

PreferenceSource PreferenceSource::from_config(const ConfigView& s) {
  PreferenceSource o;
  o.pairs = s.get<std::string>("pairs", o.pairs);
  o.format = s.get<std::string>("format", o.format);
  o.source_file = s.get<std::string>("source_file", o.source_file);
  return o;
}

void PreferenceSource::validate() const {
  RLFT_CHECK_OPTION(!pairs.empty(), "pairs", pairs, "\"store\" or a JSONL file");
}

RmOptions RmOptions::from_config(const ConfigView& s) {
  RmOptions o;
  o.source = PreferenceSource::from_config(s);
  o.steps = s.get<int64_t>("steps", o.steps);
  o.batch_size = s.get<int64_t>("batch_size", o.batch_size);
  o.eval_fraction = s.get<double>("eval_fraction", o.eval_fraction);
  o.eval_every = s.get<int64_t>("eval_every", o.eval_every);
  o.use_margin = s.get<bool>("use_margin", o.use_margin);
  o.center_coef = s.get<double>("center_coef", o.center_coef);
  o.max_length = s.get<int64_t>("max_length", o.max_length);
  o.log_every = s.get<int64_t>("log_every", o.log_every);
  return o;
}

void RmOptions::validate() const {
  source.validate();
  RLFT_CHECK_OPTION(steps >= 1, "steps", steps, "must be >= 1");
  RLFT_CHECK_OPTION(batch_size >= 1, "batch_size", batch_size, "must be >= 1");
  RLFT_CHECK_OPTION(eval_fraction >= 0 && eval_fraction < 1, "eval_fraction", eval_fraction, "must be in [0, 1)");
  RLFT_CHECK_OPTION(eval_every >= 0, "eval_every", eval_every, "must be >= 0 (0 = at the end only)");
  RLFT_CHECK_OPTION(center_coef >= 0, "center_coef", center_coef, "must be >= 0");
  RLFT_CHECK_OPTION(max_length >= 0, "max_length", max_length, "must be >= 0 (0 = no limit)");
  RLFT_CHECK_OPTION(log_every >= 1, "log_every", log_every, "must be >= 1");
}

DpoOptions DpoOptions::from_config(const ConfigView& s) {
  DpoOptions o;
  o.source = PreferenceSource::from_config(s);
  o.loss = DpoLossOptions::from_config(s);
  o.sft_weight = s.get<double>("sft_weight", o.sft_weight);
  o.steps = s.get<int64_t>("steps", o.steps);
  o.epochs = s.get<double>("epochs", o.epochs);
  o.batch_size = s.get<int64_t>("batch_size", o.batch_size);
  o.micro_batch_pairs = s.get<int64_t>("micro_batch_pairs", o.micro_batch_pairs);
  o.eval_fraction = s.get<double>("eval_fraction", o.eval_fraction);
  o.eval_every = s.get<int64_t>("eval_every", o.eval_every);
  o.max_prompt_tokens = s.get<int64_t>("max_prompt_tokens", o.max_prompt_tokens);
  o.max_completion_tokens = s.get<int64_t>("max_completion_tokens", o.max_completion_tokens);
  o.router_bias_gamma = s.get<double>("router_bias_gamma", o.router_bias_gamma);
  o.balance = policy::BalanceLossOptions::from_config(s.section("balance"));
  o.log_every = s.get<int64_t>("log_every", o.log_every);
  return o;
}

void DpoOptions::validate() const {
  source.validate();
  loss.validate();
  validate_within("balance", balance);
  RLFT_CHECK_OPTION(sft_weight >= 0, "sft_weight", sft_weight, "must be >= 0 (0 = no SFT term)");
  RLFT_CHECK_OPTION(steps >= 0, "steps", steps, "must be >= 0 (0 = epochs)");
  RLFT_CHECK_OPTION(epochs > 0, "epochs", epochs, "must be > 0");
  RLFT_CHECK_OPTION(batch_size >= 1, "batch_size", batch_size, "must be >= 1");
  RLFT_CHECK_OPTION(micro_batch_pairs >= 0, "micro_batch_pairs", micro_batch_pairs,
                    "must be >= 0 (0 = the whole batch)");
  RLFT_CHECK_OPTION(eval_fraction >= 0 && eval_fraction < 1, "eval_fraction", eval_fraction, "must be in [0, 1)");
  RLFT_CHECK_OPTION(eval_every >= 0, "eval_every", eval_every, "must be >= 0 (0 = at the end only)");
  RLFT_CHECK_OPTION(max_prompt_tokens >= 0, "max_prompt_tokens", max_prompt_tokens, "must be >= 0 (0 = no limit)");
  RLFT_CHECK_OPTION(max_completion_tokens >= 0, "max_completion_tokens", max_completion_tokens,
                    "must be >= 0 (0 = no limit)");
  RLFT_CHECK_OPTION(router_bias_gamma >= 0, "router_bias_gamma", router_bias_gamma, "must be >= 0");
  RLFT_CHECK_OPTION(log_every >= 1, "log_every", log_every, "must be >= 1");
}

}  // namespace rlft::rl
