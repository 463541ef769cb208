#include "rl/grpo_trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/memory.h"
#include "policy/arch/arch.h"
#include "policy/checkpoint/safetensors.h"
#include "policy/lora.h"
#include "rl/data_order.h"
#include "rl/evaluate.h"
#include "rl/grpo_async.h"
#include "rl/grpo_collect.h"
#include "rl/grpo_rollout_ranks.h"
#include "rl/grpo_step.h"
#include "rl/memory_estimate.h"
#include "rl/optimizer_step.h"
#include "rl/precision.h"
#include "rl/step_log.h"
#include "rl/step_memory.h"
#include "rl/train_state.h"
#include "rollout/generator.h"

namespace rlft::rl {
namespace {

// The collection's GroupSource: rolls out G completions of the prompts at the given global
// data positions (a prompt's position seeds its rows, so completions do not depend on the
// rank that samples them) and scores them with the run's rewards.
GroupSource group_source(Job& job, const GrpoOptions& g, rollout::Generator& generator,
                         const rollout::GenerateOptions& generate, EpochOrder& order) {
  return [&job, &g, &generator, &generate, &order](const std::vector<int64_t>& positions) {
    const auto& spec = job.spec();
    ScoredGroups out;
    std::vector<rollout::Request> requests;
    for (const int64_t c : positions) {
      const auto& e = spec.dataset.train[static_cast<size_t>(order.at(c))];
      requests.push_back({job.encode_prompt(e), g.group_size, static_cast<uint64_t>(c)});
      out.examples.push_back(&e);
    }
    auto t0 = std::chrono::steady_clock::now();
    {
      // Rollout computes in the trainer's precision (bf16 autocast where it trains in bf16), so
      // its log-probs are the quantity the trainer recomputes, not an fp32 one.
      AutocastGuard autocast(spec.precision.compute, job.device());
      out.groups = generator.generate(requests, g.sampling, generate, &out.generate);
    }
    out.rollout_seconds = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    reward::ScoreBatch sb;
    for (size_t p = 0; p < out.groups.size(); ++p)
      for (const auto& sample : out.groups[p].samples) {
        sb.add(*out.examples[p], sample.text, static_cast<int64_t>(sample.tokens.size()));
        sb.finish_reasons.push_back(rollout::finish_reason_name(sample.finish));
      }
    out.scores = spec.rewards->score(sb);
    out.reward_seconds = seconds_since(t0);
    return out;
  };
}

rollout::GenerateOptions rollout_options(const Job& job, const GrpoOptions& g, bool record_routing, uint64_t seed) {
  rollout::GenerateOptions o;
  o.max_new_tokens = g.max_new_tokens;
  o.stop_token_ids = {job.eos_id()};
  o.use_model_eos = false;
  o.stop_strings = g.stop_strings;
  o.detokenize = [&job](const std::vector<int64_t>& ids) { return job.decode(ids); };
  o.record_routing = record_routing;
  o.max_batch_rows = std::max<int64_t>(g.group_size, 256);
  o.seed = seed;
  o.vocab_limit = job.tok().vocab_size();
  o.speculative_tokens = g.speculative_tokens;
  return o;
}

// The reference of a KL penalty: the policy as the run started, frozen.
policy::CausalLM frozen_reference(const Job& job) {
  auto ref = job.initial_policy();
  ref->eval();
  for (auto& p : ref->parameters()) p.set_requires_grad(false);
  return ref;
}

// The reference's state by name: parameters and floating-point buffers (a DeepSeek-V3 router's
// score-correction bias is a buffer, moved by the aux-loss-free steps).
std::vector<std::pair<std::string, at::Tensor>> reference_state(const policy::CausalLM& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : model->named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : model->named_buffers())
    if (at::isFloatingType(b.value().scalar_type())) out.emplace_back(b.key(), b.value());
  return out;
}

// grpo.ref_reset_every: ref ← α · policy + (1 − α) · ref (α = 1 copies: the reference is the
// policy, bitwise).
void reset_reference(const policy::CausalLM& ref, const policy::CausalLM& policy, double alpha) {
  torch::NoGradGuard ng;
  auto target = reference_state(ref);
  const auto source = reference_state(policy);
  RLFT_CHECK(target.size() == source.size(), "the reference has {} tensors, the policy {}", target.size(),
             source.size());
  for (size_t i = 0; i < target.size(); ++i) {
    auto& t = target[i].second;
    const auto& p = source[i].second;
    if (alpha == 1.0)
      t.copy_(p);
    else
      t.mul_(1.0 - alpha).add_(p.to(t.scalar_type()), alpha);
  }
}

constexpr const char* kReferenceFile = "reference.safetensors";

// A reset reference is part of the run's state: checkpoints keep it beside the moments.
void save_reference(const policy::CausalLM& ref, const std::string& trainer_state_dir) {
  checkpoint::TensorMap tensors;
  for (const auto& [name, t] : reference_state(ref)) tensors.emplace(name, t.detach().contiguous());
  checkpoint::write_safetensors((std::filesystem::path(trainer_state_dir) / kReferenceFile).string(), tensors,
                                {{"format", "rlft.kl_reference"}});
}

// On resume past the first reset: rank 0 reads the checkpoint's reference, every rank gets it.
void restore_reference(Job& job, const policy::CausalLM& ref) {
  auto state = reference_state(ref);
  const auto path = (std::filesystem::path(job.resume_from()) / "trainer_state" / kReferenceFile).string();
  job.dist().on_main("read the KL reference", [&] {
    RLFT_CHECK(std::filesystem::exists(path),
               "{}: missing; the run resets its KL reference (grpo.ref_reset_every) and this checkpoint was written "
               "after a reset",
               path);
    const auto file = checkpoint::SafetensorsFile::open(path);
    torch::NoGradGuard ng;
    for (auto& [name, t] : state) {
      RLFT_CHECK(file.contains(name), "{}: no tensor `{}`", path, name);
      t.copy_(file.tensor(name));
    }
  });
  std::vector<at::Tensor> tensors;
  for (auto& [name, t] : state) tensors.push_back(t.detach());
  torch::NoGradGuard ng;
  job.dist().broadcast(tensors, 0);
}

// The step's work as the memory estimate sees it. Checks first that one sequence fits the
// token budget: the longest prompt among the first training examples plus max_new_tokens.
MemoryWorkload grpo_workload(Job& job, const GrpoOptions& g, const RankGroups& layout) {
  const auto& spec = job.spec();
  const auto& train = spec.dataset.train;
  int64_t prompt = 0;
  for (size_t i = 0; i < std::min<size_t>(train.size(), 1024); ++i)
    prompt = std::max<int64_t>(prompt, static_cast<int64_t>(job.encode_prompt(train[i]).size()));
  const int64_t longest = prompt + g.max_new_tokens;
  if (g.micro_batch_tokens > 0 && longest > g.micro_batch_tokens)
    throw ConfigError(fmt::format(
        "grpo.micro_batch_tokens = {}: smaller than one sequence (a {}-token prompt plus max_new_tokens {} = {} "
        "tokens); raise it to at least {}",
        g.micro_batch_tokens, prompt, g.max_new_tokens, longest, longest));
  const auto& model = job.model();
  MemoryWorkload w;
  for (const auto& p : model->parameters()) w.n_params += p.numel();
  for (const auto& [name, p] : trainable_parameters(*model)) w.n_trainable += p.numel();
  w.reference = g.loss.kl_beta > 0 && !model->lora;
  const int64_t mini_rows = std::max<int64_t>(1, layout.local_count() / g.mini_batches) * g.group_size;
  const int64_t rows = g.micro_batch_rows > 0 ? std::min(g.micro_batch_rows, mini_rows) : mini_rows;
  w.forward_tokens = rows * longest;
  if (g.micro_batch_tokens > 0)
    w.forward_tokens = std::min(w.forward_tokens, (g.micro_batch_tokens / longest) * longest);
  w.longest_sequence = longest;
  w.activation_checkpointing = spec.memory.activation_checkpointing;
  w.logits_chunk_mb = spec.memory.logits_chunk_mb;
  w.rollout_rows = std::min(layout.local_count() * g.group_size, std::max<int64_t>(g.group_size, 256));
  w.rollout_tokens = longest;
  if (job.is_rollout_rank()) {
    // It samples and never trains: the policy's weights and its part of every trainer rank's
    // groups (rl/grpo_rollout_ranks.h), no gradients, moments or training activations.
    const int64_t R = job.rollout_ranks(), parts = (layout.local_count() + R - 1) / R;
    w.n_trainable = 0;
    w.reference = false;
    w.forward_tokens = 0;
    w.rollout_rows = std::min(layout.global_count() / layout.local_count() * parts * g.group_size,
                              std::max<int64_t>(g.group_size, 256));
    return w;
  }
  // Async in this process (with rollout ranks the trainer holds no replica or copy).
  if (g.rollout.async() && job.rollout_ranks() == 0) {  // versions s − k … s may wait at once
    w.published_versions = g.rollout.max_staleness + 1;
    w.rollout_workers = g.rollout.workers;
  }
  return w;
}

// Logs the estimate and, with memory.check_fit, refuses a run that cannot fit.
void check_grpo_fits(Job& job, const GrpoOptions& g) {
  const auto est = grpo_memory_estimate(job, g);
  const auto available = memory::available_bytes();
  // What this process already holds (the policy's weights) is part of the estimate.
  const double room = available ? static_cast<double>(*available + memory::current_rss_bytes()) : 0.0;
  log::info("memory: estimated {}{}", est.describe(),
            available ? fmt::format(" of {:.2f} GB available", room / 1e9) : std::string());
  if (!job.spec().memory.check_fit || !available) return;
  check_fit(
      est, room,
      {fmt::format("grpo.micro_batch_tokens (now {})", g.micro_batch_tokens),
       fmt::format("memory.activation_checkpointing (now {}: true keeps one [tokens, D] per layer)",
                   job.spec().memory.activation_checkpointing),
       fmt::format("grpo.prompts_per_step (now {}) or grpo.group_size (now {})", g.prompts_per_step, g.group_size),
       fmt::format("grpo.max_new_tokens (now {})", g.max_new_tokens),
       fmt::format("grpo.loss.kl_beta (now {}; > 0 holds a reference model)", g.loss.kl_beta)});
}

void log_step(const Metrics& m, int64_t step, int64_t total) {
  log::info("{}", console_line(fmt::format("step {}/{}", step, total), m,
                               {{"reward", "reward_mean"},
                                {"acc", "accuracy"},
                                {"zero-var", "zero_variance_frac"},
                                {"loss", "loss"},
                                {"kl", "kl"},
                                {"ent", "entropy"},
                                {"clip", "clip_fraction"},
                                {"gnorm", "grad_norm"},
                                {"len", "response_length/mean"},
                                {"s", "time/step"},
                                {"peak MB", "memory/peak_rss_mb"},
                                {"eval acc", "eval/accuracy"}}));
}

}  // namespace

MemoryEstimate grpo_memory_estimate(Job& job, const GrpoOptions& g) {
  // The layout over the trainer ranks (a rollout rank sizes its part from trainer rank 0's).
  const int trainers = job.world().world_size() - job.rollout_ranks();
  const RankGroups layout(g.prompts_per_step, g.mini_batches, trainers, job.is_rollout_rank() ? 0 : job.dist().rank());
  return estimate_memory(job.model()->config(), grpo_workload(job, g, layout));
}

TrainResult run_grpo(Job& job, const GrpoOptions& g, int64_t stop_after) {
  auto& spec = job.spec();
  RLFT_CHECK_AS(ConfigError, g.speculative_tokens == 0 || job.model()->can_draft(),
                "grpo.speculative_tokens = {}: the policy has no MTP module to draft with (num_nextn_predict_layers "
                "= {}{}); set it to 0",
                g.speculative_tokens, job.model()->config().num_nextn_predict_layers,
                job.model()->config().num_nextn_predict_layers > 0 ? ", and policy.mtp is false" : "");
  const int64_t total = g.steps;
  check_precision(spec.precision, job.device());
  if (g.loss.ratio_level == RatioLevel::kSequence && g.loss.aggregation == LossAggregation::kTokenMean)
    log::warn(
        "grpo.loss: ratio_level sequence (GSPO) with aggregation token_mean weighs each sequence's clipped "
        "sequence ratio by its length; GSPO's objective is a mean over sequences (aggregation: "
        "seq_mean_token_mean)");
  RLFT_CHECK(!spec.dataset.train.empty(), "rlft train: the training split is empty");
  const uint64_t seed = static_cast<uint64_t>(spec.run.seed);
  const bool replay = g.routing_replay && job.model()->config().is_moe();
  EpochOrder order(static_cast<int64_t>(spec.dataset.train.size()), seed);
  if (job.is_rollout_rank()) {  // this rank only samples: rl/grpo_rollout_ranks.h
    check_grpo_fits(job, g);
    rollout::Generator generator(job.model());
    const auto generate = rollout_options(job, g, replay, seed);
    TrainResult r;
    r.steps = run_rollout_rank(job, g, group_source(job, g, generator, generate, order));
    job.finish("finished");
    return r;
  }
  auto& d = job.dist();
  const RankGroups layout(g.prompts_per_step, g.mini_batches, d.world_size(), d.rank());
  auto& model = job.model();
  model->train();
  OptimizerStep opt(trainable_parameters(*model), spec.precision, spec.optim, total * g.epochs * g.mini_batches,
                    &job.dist(), spec.distributed.bucket_mb);
  TrainerState state = resume_trainer_state(job.resume_from(), job.dist(), opt);
  if (state.step > 0) log::info("train: resuming after step {} of {}", state.step, total);

  check_grpo_fits(job, g);
  GrpoSetup setup{g, spec.precision.compute, job.device(), d, layout, model};
  setup.replay = replay;
  setup.balance = g.balance.switch_coef > 0 || g.balance.seq_alpha > 0;
  // Under LoRA the reference is the policy itself with its adapters off: no second model.
  if (g.loss.kl_beta > 0) setup.ref = model->lora ? model : frozen_reference(job);
  // parse_job refuses ref_reset_every without a reference or under LoRA.
  const bool resets = g.ref_reset_every > 0 && setup.ref && !model->lora;
  if (resets && state.step >= g.ref_reset_every) restore_reference(job, setup.ref);
  ExtraWriter state_extra;
  if (resets)
    state_extra = [&setup, &state, &g](const std::string& dir) {
      if (state.step >= g.ref_reset_every) save_reference(setup.ref, dir);
    };
  const auto names = spec.rewards->names();
  setup.accuracy_part = spec.eval.accuracy_reward.empty()
                            ? 0
                            : std::find(names.begin(), names.end(), spec.eval.accuracy_reward) - names.begin();
  setup.accuracy_threshold = spec.eval.accuracy_threshold;
  rollout::Generator generator(model);
  const auto generate = rollout_options(job, g, setup.replay, seed);
  const auto source = group_source(job, g, generator, generate, order);
  const CollectOptions collect{g.group_size, g.dynamic_sampling, g.max_resample_rounds};
  if (g.rollout.async() && g.rollout.max_staleness == 0)
    log::warn(
        "grpo.rollout: mode async with max_staleness 0 overlaps nothing (each step waits for its own rollout) and "
        "recomputes the old log-probs; use mode sync, or max_staleness >= 1");
  std::unique_ptr<RolloutStage> stage;  // null: sync in this process
  if (job.rollout_ranks() > 0) {
    stage = std::make_unique<RolloutRankLink>(job, g, state.step, total, state.cursor);
    job.log_metrics(0, {{"rollout/ranks", static_cast<double>(job.rollout_ranks())}});  // the run page's
    log::info("train: {} rollout rank(s) sample, steps by the weights {} step(s) back", job.rollout_ranks(),
              g.rollout.lag());
  } else if (g.rollout.async()) {
    RLFT_CHECK_AS(ConfigError, !g.dynamic_sampling || d.world_size() == 1,
                  "grpo.dynamic_sampling with grpo.rollout.mode = async on {} ranks: the resampling rounds agree "
                  "over the ranks, which a rollout thread cannot do beside the trainer's collectives; use sync or "
                  "turn dynamic_sampling off",
                  d.world_size());
    const auto archs = policy::builtin_architectures();
    // A replica has the policy's modules: under LoRA, adapters where the policy has them.
    auto make_replica = [&model, archs] {
      auto replica = policy::build_model(model->config(), model->options(), archs);
      if (model->lora) policy::attach_lora(*replica, model->lora->options, 0);
      return replica;
    };
    // Each rollout thread samples with its replica through its own generator.
    auto collect_with = [&job, &g, &generate, &order, &setup, &collect, &d](policy::CausalLM& replica, int64_t,
                                                                            int64_t& cursor) {
      rollout::Generator replica_generator(replica);
      return collect_groups(setup.layout, collect, cursor, d, group_source(job, g, replica_generator, generate, order));
    };
    stage = std::make_unique<AsyncRollout>(g.rollout, make_replica, model, state.step, total, state.cursor,
                                           g.prompts_per_step, collect_with);
    log::info("train: async rollout, {} worker(s), steps sampled by the weights {} step(s) back", g.rollout.workers,
              g.rollout.max_staleness);
  }
  const int64_t eval_tokens = spec.eval.max_new_tokens > 0 ? spec.eval.max_new_tokens : g.max_new_tokens;
  const bool eval_enabled = spec.eval.enabled && !spec.dataset.eval.empty();

  log::info("train: GRPO, {} steps × {} prompts × {} samples, rewards {}, run '{}' -> {}", total, g.prompts_per_step,
            g.group_size, spec.rewards->describe(), job.run_name(), job.output_dir());
  install_stop_handlers();
  if (state.step == 0 && eval_enabled) {
    const auto ev = evaluate(job, spec.dataset.eval, spec.eval, eval_tokens, seed);
    job.log_metrics(0, ev.metrics());
    log::info("eval before training: accuracy {:.3f}, reward {:.3f} ({} prompts, {:.1f} s)", ev.accuracy,
              ev.reward_mean, ev.prompts, ev.seconds);
  }

  TrainResult result;
  while (state.step < total) {
    const auto started = std::chrono::steady_clock::now();
    start_step_memory(job.device());
    CollectedGroups collected;
    AsyncStep arrived;
    if (stage) {
      arrived = stage->pop(state.step);
      collected = std::move(arrived.collected);
      state.cursor = arrived.cursor_after;
    } else {
      collected = collect_groups(setup.layout, collect, state.cursor, d, source);
      arrived.version = state.step;
      for (auto& group : collected.kept.groups) group.policy_version = state.step;
    }
    const auto t_train = std::chrono::steady_clock::now();
    const auto batch = build_step_batch(setup, collected);
    const auto update = train_epochs(setup, batch, opt, state);
    const StepRecord step{collected, batch, update, seconds_since(t_train), state.skipped_steps, started};
    const int64_t staleness = state.step - arrived.version;
    ++state.step;
    double sync_seconds = 0;
    if (stage) {  // the new weights, for the step that samples with them
      const auto t_sync = std::chrono::steady_clock::now();
      stage->publish(model, state.step);
      sync_seconds = seconds_since(t_sync);
    }

    Metrics m = step_metrics(setup, step);
    m.emplace_back("rollout/staleness", static_cast<double>(staleness));
    if (stage) {
      m.emplace_back("time/weight_sync", sync_seconds);
      // Rollout time the trainer did not wait for ran beside training.
      const double rollout_s = collected.kept.rollout_seconds + collected.kept.reward_seconds;
      m.emplace_back("rollout/version", static_cast<double>(arrived.version));
      m.emplace_back("rollout/dropped_groups", 0.0);  // the lag is fixed: no group exceeds it
      m.emplace_back("time/rollout_wait", arrived.wait_seconds);
      m.emplace_back("time/rollout_overlap", std::max(0.0, rollout_s - arrived.wait_seconds));
    }
    append_step_memory(m, d, job.device());
    if (g.log_rollouts > 0) {
      const auto records =
          step_rollouts(setup, step, state.step, [&job](const data::Example& e) { return job.prompt_text(e); });
      if (job.is_main()) job.store().add_rollouts(job.run_id(), records);
    }
    const bool last = state.step == total;
    if (eval_enabled && (last || (spec.eval.every > 0 && state.step % spec.eval.every == 0))) {
      const auto ev = evaluate(job, spec.dataset.eval, spec.eval, eval_tokens, seed);
      for (const auto& kv : ev.metrics()) m.push_back(kv);
    }
    job.log_metrics(state.step, m);
    log_step(m, state.step, total);
    if (resets && state.step % g.ref_reset_every == 0 && !last) {
      reset_reference(setup.ref, model, g.ref_mixup_alpha);
      log::info("train: KL reference reset to the policy after step {} (ref_mixup_alpha {})", state.step,
                g.ref_mixup_alpha);
    }
    if (end_of_step(job, state, opt.optimizer(), total, stop_after, "train", result, {}, state_extra)) {
      if (stage) stage->finish();
      return result;
    }
  }
  auto finished = finish_training(job, state, opt.optimizer(), {}, state_extra);
  if (stage) stage->finish();
  return finished;
}

}  // namespace rlft::rl
