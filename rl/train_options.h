#pragma once
// The options of a training job, one struct per YAML section, each read and validated up
// front (errors name file:line:column and the dotted key). docs/training.md describes every
// key; configs/default/*.yaml carry a comment on each.
//
//   policy:      where the weights start (a model directory, or `model:` from scratch)
//   tokenizer:   tokenizer.json to use, or one to train on the run's data
//   prompt:      how a prompt becomes text (policy/tokenizer/prompt.h)
//   precision:   compute dtype and loss scaling
//   optim:       AdamW and the learning-rate schedule
//   checkpoint:  how often, how many to keep
//   eval:        held-out evaluation
//   grpo:        the RL loop (rlft train)
//   sft:         supervised fine-tuning (rlft sft)
//   distributed: the process group of a multi-rank run (rlft launch, torchrun, SLURM)

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/distributed.h"
#include "policy/causal_lm.h"
#include "rl/advantages.h"
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
  static PolicySource from_config(const ConfigView& section);
};

struct TokenizerSource {
  std::string path;  ///< tokenizer.json or a directory; "" = the policy directory's, else train one
  int vocab_size = 512;                                ///< when training: ids in all
  std::vector<std::string> special_tokens = {"<|endoftext|>"};  ///< when training: ids 0, 1, …
  std::string eos_token = "<|endoftext|>";             ///< ends completions and demonstrations
  static TokenizerSource from_config(const ConfigView& section);
};

enum class Compute { kFp32, kBf16, kFp16 };

struct PrecisionOptions {
  Compute compute = Compute::kFp32;  ///< fp32 | bf16 (autocast) | fp16 (autocast, CUDA)
  bool loss_scaling = false;         ///< dynamic loss scaling (on by default for fp16)
  LossScaleOptions scale;
  int64_t max_consecutive_skips = 10;  ///< this many skipped steps in a row stop the run
  /// Test hook: optimizer steps (1-based) whose loss is multiplied by inf (a real overflow).
  std::vector<int64_t> inject_nonfinite;
  static PrecisionOptions from_config(const ConfigView& section);
};
const char* compute_name(Compute c);

struct OptimOptions {
  OptimizerOptions adamw;
  ScheduleOptions schedule;  ///< total_steps is filled from the job's length when 0
  static OptimOptions from_config(const ConfigView& section);
};

struct DistributedOptions {
  dist::Options group;     ///< backend (auto | gloo | nccl) and the timeout on every collective
  double bucket_mb = 25.0;  ///< gradients are all-reduced in buckets of about this many MiB (> 0)
  static DistributedOptions from_config(const ConfigView& section);
};

struct CheckpointOptions {
  int64_t every = 0;  ///< steps between checkpoints; 0 = only at the end
  int64_t keep = 2;   ///< newest checkpoints kept (>= 1)
  static CheckpointOptions from_config(const ConfigView& section);
};

struct EvalOptions {
  bool enabled = true;    ///< false: no held-out evaluation at all
  int64_t every = 0;      ///< steps between evaluations; 0 = only before and after training
  int64_t size = 0;       ///< held-out examples used; 0 = the whole eval split
  int64_t samples = 1;    ///< completions per prompt (k of pass@k)
  double temperature = 0.0;  ///< 0 = greedy
  int64_t max_new_tokens = 0;  ///< 0 = the training value
  std::string accuracy_reward = "";  ///< reward part counted as accuracy ("" = the first part)
  double accuracy_threshold = 1.0;   ///< a completion is correct when that part scores >= this
  int64_t batch_rows = 256;          ///< rows generated together
  static EvalOptions from_config(const ConfigView& section);
};

struct GrpoOptions {
  int64_t steps = 100;             ///< RL steps (each: one rollout batch)
  int64_t prompts_per_step = 16;   ///< P groups per step
  int64_t group_size = 8;          ///< G completions per prompt
  int64_t max_new_tokens = 64;
  rollout::SamplingOptions sampling;
  std::vector<std::string> stop_strings;
  AdvantageOptions advantage;
  LossOptions loss;
  int64_t epochs = 1;        ///< μ: passes over each rollout batch
  int64_t mini_batches = 1;  ///< optimizer steps per pass
  int64_t micro_batch_rows = 0;  ///< rows per forward (gradient accumulation); 0 = the whole mini-batch
  bool mask_truncated = false;   ///< completions cut by max_new_tokens do not count in the loss
  bool dynamic_sampling = false; ///< drop zero-variance groups and draw more prompts (DAPO)
  int64_t max_resample_rounds = 4;
  bool routing_replay = true;    ///< the trainer's forward reuses the experts rollout chose
  bool recompute_old_logp = false;  ///< old log-probs from a trainer forward instead of rollout's
  double router_bias_gamma = 0.001;  ///< aux-loss-free bias step (γ); 0 = off
  policy::BalanceLossOptions balance;
  bool kl_in_reward = false;     ///< KL penalty subtracted from rewards instead of in the loss
  int64_t log_rollouts = 4;      ///< groups stored per step for `rlft serve`
  static GrpoOptions from_config(const ConfigView& section);
};

struct SftOptions {
  int64_t steps = 0;          ///< optimizer steps; 0 = epochs × batches per epoch
  double epochs = 1.0;        ///< passes over the training split when steps = 0
  int64_t batch_size = 32;    ///< sequences per step
  double mtp_weight = 0.3;    ///< weight of the MTP loss (when the model has MTP modules)
  policy::BalanceLossOptions balance;
  double router_bias_gamma = 0.001;
  int64_t log_every = 10;
  static SftOptions from_config(const ConfigView& section);
};

struct RmOptions {
  std::string pairs = "store";   ///< "store" (feedback pairs and labels of run.store) or a JSONL file
  std::string format = "pairs";  ///< the file's format (data/feedback_import.h)
  std::string source_file;       ///< store: only pairs imported from this file ("" = all)
  int64_t steps = 200;           ///< optimizer steps
  int64_t batch_size = 32;       ///< pairs per step
  double eval_fraction = 0.1;    ///< pairs held out for accuracy, in [0, 1)
  int64_t eval_every = 50;       ///< steps between evaluations (and at the end)
  bool use_margin = true;        ///< subtract a pair's margin in the loss when it has one
  double center_coef = 0.0;      ///< reward centring: + coef · mean((r_c + r_r)²) (Eisenstein et al. 2023)
  int64_t max_length = 256;      ///< tokens per scored text at most (the end is kept)
  int64_t log_every = 10;
  static RmOptions from_config(const ConfigView& section);
};

}  // namespace rlft::rl
