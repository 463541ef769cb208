#pragma once
// The stages of one GRPO step after collection (rl/grpo_collect.h), over typed data:
//
//   build_step_batch  the collected groups as training rows: sequences (with the replayed
//                     routing and the truncation mask), the behaviour, old and reference
//                     log-probs as aligned tensors, the KL charged to the rewards, the
//                     advantages, and the micro-batch plan as row ranges
//   train_epochs      grpo.epochs passes over the batch in grpo.mini_batches optimizer steps,
//                     each accumulated over its micro-batches → UpdateStats
//   step_metrics      (rl/grpo_metrics.cpp) the step's metrics over every rank
//
// Legend: P prompts per step (global), P_local this rank's groups, G group size,
//         N = P_local·G this rank's rows (row p·G + k = group p, sample k),
//         C the step's longest completion, m mini-batches.

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/distributed.h"
#include "data/store.h"
#include "policy/causal_lm.h"
#include "rl/expert_load.h"
#include "rl/grpo_collect.h"
#include "rl/optimizer_step.h"
#include "rl/precision.h"
#include "rl/sequence_batch.h"
#include "rl/step_log.h"
#include "rl/train_options.h"
#include "rl/train_state.h"

namespace rlft::rl {

/// What every stage of a run's steps shares: set up once by run_grpo.
struct GrpoSetup {
  const GrpoOptions& options;
  Compute compute = Compute::kFp32;
  at::Device device = at::kCPU;
  dist::Context& dist;
  RankGroups layout;
  policy::CausalLM model;
  /// The frozen reference; null when kl_beta = 0. Under LoRA the policy itself, run with
  /// its adapters off (policy::AdaptersDisabled).
  policy::CausalLM ref{nullptr};
  bool replay = false;            ///< the training forward replays rollout's experts (MoE only)
  bool balance = false;           ///< a balance loss is added (switch_coef or seq_alpha > 0)
  size_t accuracy_part = 0;       ///< the reward part counted as accuracy (eval.accuracy_reward)
  double accuracy_threshold = 1;  ///< a completion is correct when that part scores >= this

  /// The forward of the trainer's log-probs, for old/reference log-probs (no entropy, no
  /// balance loss) or for training (`train`: both as configured).
  PolicyForwardOptions forward_options(bool train) const;
};

/// How many rows one forward may take.
struct MicroBatchLimits {
  int64_t rows = 0;    ///< rows at most (0 = no limit)
  int64_t tokens = 0;  ///< padded tokens at most: rows × the longest row's tokens (0 = no limit)
};

/// Row ranges of each mini-batch's micro-batches: `groups` groups of `group_size` rows split
/// into `mini_batches` runs of whole groups (the last may be short), each cut greedily into
/// runs of consecutive rows within `limits`. `lengths` [groups·group_size]: each row's tokens
/// (prompt + completion; needed with a token limit). A row longer than the token limit is an
/// error naming grpo.micro_batch_tokens. [m][micro-batches].
std::vector<std::vector<RowRange>> plan_micro_batches(int64_t groups, int64_t group_size, int64_t mini_batches,
                                                      const MicroBatchLimits& limits,
                                                      const std::vector<int64_t>& lengths = {});

/// The training rows of the groups, in group-major order. With `mask_truncated` a completion
/// cut by max_new_tokens keeps its tokens but none of them counts in the loss (DAPO §3.4's
/// overlong filtering).
std::vector<Sequence> make_sequences(const std::vector<rollout::Group>& groups, bool mask_truncated);

/// Rollout's log-probs of the groups' completions, row-aligned: [N, C] float32.
at::Tensor behaviour_logprobs(const std::vector<rollout::Group>& groups);

/// The KL penalty charged to the rewards.
struct KlCharge {
  double sum = 0.0;     ///< Σ over completions and tokens of the k1 estimate log π_old − log π_ref
  double tokens = 0.0;  ///< completion tokens charged
};

/// r_{p,k} −= β · Σ_t (log π_old − log π_ref)(t): the KL penalty as a part of the reward
/// (InstructGPT, REINFORCE++) instead of a loss term. rewards [P_local, G] float64, in place;
/// old_logp and ref_logp [N, C] row-aligned; lengths [N] the completions' token counts.
KlCharge charge_kl_to_rewards(at::Tensor& rewards, const at::Tensor& old_logp, const at::Tensor& ref_logp,
                              const std::vector<int64_t>& lengths, double beta);

struct StepBatch {
  std::vector<Sequence> sequences;  ///< N rows
  at::Tensor behaviour_logp;        ///< [N, C] float32, rollout's
  at::Tensor old_logp;              ///< [N, C] float32: rollout's, or the trainer's (GrpoOptions::recompute_old)
  at::Tensor ref_logp;              ///< [N, C] float32; undefined without a reference
  KlCharge reward_kl;               ///< what kl_in_reward charged (zeros otherwise)
  at::Tensor global_advantages;     ///< [P·G] float32, every rank's rows in rank order
  at::Tensor advantages;            ///< [N] float32, this rank's rows of global_advantages
  std::vector<std::vector<RowRange>> mini_batches;  ///< [m][micro-batches]
  /// Per mini-batch, over every rank: rows, and completion tokens that count in the loss.
  std::vector<double> mini_rows, mini_tokens;

  int64_t rows() const { return static_cast<int64_t>(sequences.size()); }
};

/// Builds the step's batch from this rank's groups and scores. Runs the reference (and,
/// with recompute_old_logp, the policy) without gradients over the micro-batches; gathers
/// the rewards of every rank for the advantages (a batch-level scale sees the whole batch).
StepBatch build_step_batch(const GrpoSetup& setup, const CollectedGroups& collected);

/// Sums over the step's optimizer steps, each mini-batch's figures weighted as its loss.
struct UpdateStats {
  double loss = 0, policy_loss = 0, kl = 0, entropy = 0, clip_fraction = 0, ratio_mean = 0, approx_kl_old = 0;
  double is_capped = 0;  ///< share of tokens whose truncated importance weight hit loss.behaviour_is_cap
  double grad_norm = 0;
  int64_t optimizer_steps = 0;  ///< epochs × mini-batches
  int64_t applied_steps = 0;    ///< not skipped for a non-finite gradient
  double lr = 0;                ///< after the last optimizer step
  double loss_scale = 1;        ///< in force after the last optimizer step
  double allreduce_seconds = 0, allreduce_wait_seconds = 0, allreduce_bytes = 0;
  LoadAccumulator loads;  ///< router loads of the first epoch, summed over ranks
};

/// grpo.epochs passes over `batch`; AdamW steps through `opt`; the trunk's router biases
/// move against the first epoch's loads when any optimizer step was applied.
UpdateStats train_epochs(const GrpoSetup& setup, const StepBatch& batch, OptimizerStep& opt, TrainerState& state);

/// What one step did, for its metrics.
struct StepRecord {
  const CollectedGroups& collected;
  const StepBatch& batch;
  const UpdateStats& update;
  double train_seconds = 0;   ///< building the batch and training it
  int64_t skipped_steps = 0;  ///< optimizer steps skipped so far in the run (TrainerState)
  std::chrono::steady_clock::time_point started;
};

/// The step's metrics over every rank (docs/training.md lists them): rewards, accuracy,
/// advantages, losses, lengths, timings, throughput, expert loads. Collective: every rank
/// calls it; every rank gets the same figures.
Metrics step_metrics(const GrpoSetup& setup, const StepRecord& step);

/// The stored rollouts of a step (`rlft serve`, `rlft runs show`): the global batch's first
/// grpo.log_rollouts groups, gathered from whichever rank holds them, sorted by prompt and
/// sample. `prompt_text` renders a group's example. Collective with several ranks.
std::vector<data::RolloutRecord> step_rollouts(const GrpoSetup& setup, const StepRecord& step, int64_t step_index,
                                               const std::function<std::string(const data::Example&)>& prompt_text);

}  // namespace rlft::rl
