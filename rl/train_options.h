#pragma once
// The options of a training job, one struct per YAML section. docs/training.md describes
// every key; configs/default/*.yaml carry a comment on each.
//
// Every struct here (and each one it holds) follows one convention (core/config.h): its field
// initialisers are the only defaults; `from_config(section)` reads the section's keys with
// those fields as fallbacks; `void validate() const` throws rlft::OptionError naming the
// field by its key in the section ("loss.kl_beta"); rl::parse_job reads each section with
// read_options<T>(), which reports a failed field at its own file:line:column:
//
//   configs/default/grpo.yaml:36:14: grpo.loss.kl_beta = -1: must be >= 0
//
//   policy:      where the weights start (a model directory, or `model:` from scratch)
//   tokenizer:   tokenizer.json to use, or one to train on the run's data
//   prompt:      how a prompt becomes text (policy/tokenizer/prompt.h)
//   precision:   compute dtype and loss scaling
//   optim:       AdamW and the learning-rate schedule
//   checkpoint:  how often, how many to keep
//   memory:      chunked LM head, activation checkpointing, the fit check
//   eval:        held-out evaluation
//   grpo:        the RL loop (rlft train)
//   sft:         supervised fine-tuning (rlft sft)
//   rm:          a preference reward model (rlft rm train)
//   dpo:         preference optimisation of the policy (rlft dpo)
//   distributed: the process group of a multi-rank run (rlft launch, torchrun, SLURM)

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/distributed.h"
#include "policy/causal_lm.h"
#include "rl/advantages.h"
#include "rl/dpo_loss.h"
#include "rl/loss_scale.h"
#include "rl/losses.h"
#include "rl/optimizer.h"
#include "rl/schedule.h"
#include "rollout/sampling.h"

namespace rlft {
class ConfigView;
}

namespace rlft::rl {

struct PolicySource {
  std::string path;  ///< a model directory to start from; "" = build `model:` from scratch
  bool mtp = true;   ///< build / load the MTP modules (when the architecture has them)
  /// A PEFT LoRA adapter directory put on the policy (and trained further: LoRA mode, its
  /// rank, alpha and modules); "" = none.
  std::string adapter;
  static PolicySource from_config(const ConfigView& section);
  void validate() const {}  ///< nothing to check here: a bad directory fails when it is loaded
};

struct TokenizerSource {
  std::string path;      ///< tokenizer.json or a directory; "" = the policy directory's, else train one
  int vocab_size = 512;  ///< when training: ids in all (>= 257)
  std::vector<std::string> special_tokens = {"<|endoftext|>"};  ///< when training: ids 0, 1, …
  std::string eos_token = "<|endoftext|>";                      ///< ends completions and demonstrations (not empty)
  /// `eos_token` is in the config. When it is not and chat data renders with the checkpoint's
  /// chat template, tokenizer_config.json's eos_token (the template's end of turn) ends completions.
  bool eos_given = false;
  static TokenizerSource from_config(const ConfigView& section);
  void validate() const;
};

enum class Compute { kFp32, kBf16, kFp16 };

struct PrecisionOptions {
  Compute compute = Compute::kFp32;  ///< fp32 | bf16 (autocast) | fp16 (autocast, CUDA)
  /// Dynamic loss scaling. YAML's `loss_scaling: auto | on | off` (auto, the default, turns
  /// it on for fp16 only) resolves to this flag.
  bool loss_scaling = false;
  LossScaleOptions scale;              ///< its keys sit in `precision:` itself (init_scale, …)
  int64_t max_consecutive_skips = 10;  ///< this many skipped steps in a row stop the run (>= 1)
  /// Test hook: optimizer steps (1-based) whose loss is multiplied by inf (a real overflow).
  std::vector<int64_t> inject_nonfinite;
  static PrecisionOptions from_config(const ConfigView& section);
  void validate() const;
};
const char* compute_name(Compute c);
Compute parse_compute(const std::string& name);  ///< fp32 | bf16 | fp16; throws rlft::Error

struct OptimOptions {
  OptimizerOptions adamw;  ///< its keys sit in `optim:` itself (beta1, …)
  /// Keys in `optim:` itself, `kind` as `schedule`; total_steps is set from the job's length
  /// when the optimizer is built (rl/precision.h).
  ScheduleOptions schedule;
  static OptimOptions from_config(const ConfigView& section);
  void validate() const;
};

struct DistributedOptions {
  dist::Options group;      ///< backend (auto | gloo | nccl) and the timeout on every collective
  double bucket_mb = 25.0;  ///< gradients are all-reduced in buckets of about this many MiB (> 0)
  /// GRPO: the last R ranks only sample (rollout ranks), the others train (>= 0; 0 = every rank
  /// does both). rl/grpo_rollout_ranks.h.
  int64_t rollout_ranks = 0;
  static DistributedOptions from_config(const ConfigView& section);
  void validate() const;
};

struct CheckpointOptions {
  int64_t every = 0;  ///< steps between checkpoints (>= 0); 0 = only at the end
  int64_t keep = 2;   ///< newest checkpoints kept (>= 1)
  static CheckpointOptions from_config(const ConfigView& section);
  void validate() const;
};

/// `memory:` — what bounds memory at real sizes (docs/training.md, "Memory").
struct MemoryOptions {
  /// MiB of float32 logits per chunk when the LM head runs fused with the log-softmax
  /// (log-probs, entropies, cross-entropies; > 0). Smaller saves memory, larger is fewer,
  /// larger GEMMs: at a 151,936-id vocabulary 64 MiB is 110 tokens per chunk.
  double logits_chunk_mb = 64.0;
  /// Recompute each decoder layer's activations in backward instead of keeping them.
  bool activation_checkpointing = false;
  /// Refuse to start a run whose estimated peak (weights, gradients, AdamW moments, the
  /// reference model, activations) exceeds the memory available.
  bool check_fit = true;
  static MemoryOptions from_config(const ConfigView& section);
  void validate() const;
};

struct EvalOptions {
  bool enabled = true;               ///< false: no held-out evaluation at all
  int64_t every = 0;                 ///< steps between evaluations (>= 0); 0 = only before and after training
  int64_t size = 0;                  ///< held-out examples used (>= 0); 0 = the whole eval split
  int64_t samples = 1;               ///< completions per prompt (k of pass@k, >= 1; > 1 needs temperature > 0)
  double temperature = 0.0;          ///< >= 0; 0 = greedy
  int64_t max_new_tokens = 0;        ///< >= 0; 0 = the training value
  std::string accuracy_reward = "";  ///< reward part counted as accuracy ("" = the first part)
  double accuracy_threshold = 1.0;   ///< a completion is correct when that part scores >= this
  int64_t batch_rows = 256;          ///< rows generated together (>= 1)
  static EvalOptions from_config(const ConfigView& section);
  void validate() const;  ///< accuracy_reward is checked against `rewards:` by rl::parse_job
};

/// `grpo.rollout:` — how rollout and training share time (rl/grpo_async.h).
struct RolloutStageOptions {
  std::string mode = "sync";  ///< sync: roll out, then train; async: rollout of later steps overlaps training
  int64_t max_staleness = 1;  ///< async: k, the steps of lag between the weights that sample and the trainer's (>= 0)
  int64_t workers = 1;        ///< async: rollout threads, each with a replica (>= 1)
  int64_t queue = 0;  ///< async: collected steps waiting for the trainer at most (>= 0; 0 = max_staleness, at least 1)
  int64_t threads = 0;  ///< async: intra-op threads of each rollout thread (>= 0; 0 = the default)
  bool async() const { return mode == "async"; }
  /// Steps between the weights that sample a step and the step: max_staleness in async mode, 0 in sync.
  int64_t lag() const { return async() ? max_staleness : 0; }
  static RolloutStageOptions from_config(const ConfigView& section);
  void validate() const;
};

struct GrpoOptions {
  int64_t steps = 100;                ///< RL steps (each: one rollout batch; >= 1)
  int64_t prompts_per_step = 16;      ///< P groups per step (>= 1)
  int64_t group_size = 8;             ///< G completions per prompt (>= 2)
  int64_t max_new_tokens = 64;        ///< tokens per completion at most (>= 1)
  rollout::SamplingOptions sampling;  ///< `sampling:`; GRPO samples, so temperature > 0
  /// Speculative rollout: tokens the policy's MTP module drafts per decode step (0..15, 0 =
  /// off); samples and log-probs stay the policy's (rollout/generator.h).
  int64_t speculative_tokens = 0;
  std::vector<std::string> stop_strings;  ///< a completion ends at the first of these
  AdvantageOptions advantage;             ///< `advantage:`
  LossOptions loss;                       ///< `loss:`; norm_tokens defaults to max_new_tokens
  int64_t epochs = 1;                     ///< μ: passes over each rollout batch (>= 1)
  int64_t mini_batches = 1;               ///< optimizer steps per pass (>= 1, divides prompts_per_step)
  int64_t micro_batch_rows = 0;           ///< rows per forward (gradient accumulation, >= 0); 0 = the whole mini-batch
  /// Padded tokens (rows × longest row) per forward at most (>= 0; 0 = no limit); with
  /// micro_batch_rows both limits hold. At least one sequence (prompt + max_new_tokens).
  int64_t micro_batch_tokens = 0;
  bool mask_truncated = false;      ///< completions cut by max_new_tokens do not count in the loss
  bool dynamic_sampling = false;    ///< drop zero-variance groups and draw more prompts (DAPO)
  int64_t max_resample_rounds = 4;  ///< dynamic_sampling: extra draws per step at most (>= 0)
  bool routing_replay = true;       ///< the trainer's forward reuses the experts rollout chose
  /// Old log-probs from a trainer forward (under the trainer's autocast) instead of rollout's.
  /// YAML `auto | true | false`; auto (unset) recomputes when precision.compute is not fp32,
  /// where rollout's numbers are not the trainer's (GrpoOptions::recompute_old(Compute)).
  std::optional<bool> recompute_old_logp;
  double router_bias_gamma = 0.001;    ///< aux-loss-free bias step (γ, >= 0); 0 = off
  policy::BalanceLossOptions balance;  ///< `balance:`
  bool kl_in_reward = false;  ///< `loss.kl_in_reward`: KL penalty subtracted from rewards instead of in the loss
  /// Steps between resets of the KL reference to the current policy (>= 0; 0 = never): after
  /// step k·N the reference becomes ref_mixup_alpha · policy + (1 − ref_mixup_alpha) · ref
  /// (TRL's sync_ref_model, ref_model_sync_steps, ref_model_mixup_alpha). Needs kl_beta > 0;
  /// not under LoRA (the reference there is the adapters' base).
  int64_t ref_reset_every = 0;
  double ref_mixup_alpha = 1.0;  ///< in (0, 1]; 1 = the reference becomes the policy
  int64_t log_rollouts = 4;      ///< groups stored per step for `rlft serve` (>= 0)
  RolloutStageOptions rollout;   ///< `rollout:`
  static GrpoOptions from_config(const ConfigView& section);
  /// Whether old log-probs are recomputed under `compute`: recompute_old_logp, or auto.
  /// Async rollout always recomputes: rollout's numbers are a stale policy's.
  bool recompute_old(Compute compute) const {
    return rollout.async() || recompute_old_logp.value_or(compute != Compute::kFp32);
  }
  void validate() const;
};

struct SftOptions {
  int64_t steps = 0;                   ///< optimizer steps (>= 0); 0 = epochs × batches per epoch
  double epochs = 1.0;                 ///< passes over the training split when steps = 0 (> 0)
  int64_t batch_size = 32;             ///< sequences per step (>= 1)
  double mtp_weight = 0.3;             ///< weight of the MTP loss (>= 0; when the model has MTP modules)
  policy::BalanceLossOptions balance;  ///< `balance:`
  double router_bias_gamma = 0.001;    ///< aux-loss-free bias step (γ, >= 0); 0 = off
  int64_t log_every = 10;              ///< steps between log lines (>= 1)
  /// Which tokens the loss counts: "completion" (the final reply, the default) or
  /// "assistant_turns" (every assistant turn of a chat, as the chat template marks them:
  /// its {% generation %} blocks, else by rendering prefixes; needs a chat template).
  std::string train_on = "completion";
  static SftOptions from_config(const ConfigView& section);
  void validate() const;
};

/// Where preference pairs come from (the `rm:` and `dpo:` sections' `pairs`, `format`,
/// `source_file`; rl/preference_pairs.h).
struct PreferenceSource {
  std::string pairs = "store";   ///< "store" (feedback pairs and labels of run.store) or a JSONL file
  std::string format = "pairs";  ///< the file's format (data/feedback_import.h)
  std::string source_file;       ///< store: only pairs imported from this file ("" = all)
  static PreferenceSource from_config(const ConfigView& section);
  void validate() const;
};

struct RmOptions {
  PreferenceSource source;     ///< `pairs`, `format`, `source_file`
  int64_t steps = 200;         ///< optimizer steps (>= 1)
  int64_t batch_size = 32;     ///< pairs per step (>= 1)
  double eval_fraction = 0.1;  ///< pairs held out for accuracy, in [0, 1)
  int64_t eval_every = 50;     ///< steps between evaluations (>= 0; and at the end)
  bool use_margin = true;      ///< subtract a pair's margin in the loss when it has one
  double center_coef = 0.0;    ///< reward centring (>= 0): + coef · mean((r_c + r_r)²) (Eisenstein et al. 2023)
  int64_t max_length = 256;    ///< tokens per scored text at most (>= 0, the end is kept; 0 = no limit)
  int64_t log_every = 10;      ///< steps between log lines (>= 1)
  static RmOptions from_config(const ConfigView& section);
  void validate() const;
};

/// `dpo:` — preference optimisation of the policy itself (rl/dpo_trainer.h).
struct DpoOptions {
  PreferenceSource source;              ///< `pairs`, `format`, `source_file`
  DpoLossOptions loss;                  ///< `loss`, `beta`, `label_smoothing`, `simpo_gamma`
  double sft_weight = 0.0;              ///< α of the SFT term on the chosen reply (RPO; >= 0; 0 = off)
  int64_t steps = 0;                    ///< optimizer steps (>= 0); 0 = epochs × batches per epoch
  double epochs = 1.0;                  ///< passes over the training pairs when steps = 0 (> 0)
  int64_t batch_size = 32;              ///< pairs per step (>= 1)
  int64_t micro_batch_pairs = 0;        ///< pairs per forward (gradient accumulation, >= 0); 0 = the whole batch
  double eval_fraction = 0.1;           ///< pairs held out for the held-out accuracy, in [0, 1)
  int64_t eval_every = 50;              ///< steps between evaluations (>= 0; and at the end)
  int64_t max_prompt_tokens = 512;      ///< prompt tokens at most (>= 0, the end is kept; 0 = no limit)
  int64_t max_completion_tokens = 512;  ///< reply tokens at most (>= 0, the start is kept; 0 = no limit)
  double router_bias_gamma = 0.001;     ///< aux-loss-free bias step (γ, >= 0); 0 = off
  policy::BalanceLossOptions balance;   ///< `balance:`
  int64_t log_every = 10;               ///< steps between log lines (>= 1)
  static DpoOptions from_config(const ConfigView& section);
  void validate() const;
};

}  // namespace rlft::rl
