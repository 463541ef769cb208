#pragma once
// The GRPO trainer (`rlft train`). One step:
//
//   rollout    P prompts × G completions from the current policy (rollout::Generator: the
//              prompt prefilled once per group, KV cache, the experts each token used recorded)
//   reward     the run's RewardSet scores every completion; every part is kept
//   advantage  rl/advantages.h over [P, G]; zero-variance groups are counted and, with
//              grpo.dynamic_sampling, replaced by groups of fresh prompts (DAPO)
//   train      grpo.epochs passes (μ) over the batch in grpo.mini_batches optimizer steps,
//              each in micro-batches (gradient accumulation); the training forward replays
//              rollout's routing; loss rl/losses.h; AdamW with warm-up + cosine; the
//              aux-loss-free router-bias update after the step
//   sync       rollout samples from the very weights the trainer updates (one process), so
//              the next step is on-policy with nothing to copy; time/sync is reported as 0
//
// old log-probs: the behaviour log-probs rollout recorded (rollout/logprobs.h — equal to the
// trainer's within 1e-5, tested), or with grpo.recompute_old_logp the trainer's own forward
// before the first update (then the first mini-batch's ratio is exactly 1).
//
// Evaluation on the held-out split before the first step, every eval.every steps and after
// the last. Metrics per step go to the store and one line to the console.

#include <cstdint>

#include "rl/job.h"
#include "rl/memory_estimate.h"
#include "rl/sft_trainer.h"

namespace rlft::rl {

/// Trains the policy of `job` with `options` (the `grpo:` section). `stop_after` > 0: stop (as if
/// interrupted) once that many steps are complete.
TrainResult run_grpo(Job& job, const GrpoOptions& options, int64_t stop_after = 0);

/// What a step of this run will hold at its peak (rl/memory_estimate.h); run_grpo logs it and,
/// with memory.check_fit, refuses a run whose estimate exceeds the memory available. Throws
/// ConfigError when grpo.micro_batch_tokens cannot hold one sequence.
MemoryEstimate grpo_memory_estimate(Job& job, const GrpoOptions& options);

}  // namespace rlft::rl
