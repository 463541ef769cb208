#pragma once
// Supervised fine-tuning (`rlft sft`): the policy learns the training split's demonstrations.
//
//   loss = mean over completion tokens of −log p(token)          (prompt tokens carry no loss)
//        + sft.mtp_weight · MTP loss     (when the model has MTP modules; DeepSeek-V3 §2.2)
//        + balance losses                (sft.balance)
//
// Each step takes sft.batch_size examples in the order epoch_order(data.seed, epoch) gives;
// checkpoints, resume, SIGINT/SIGTERM and metrics as in GRPO (rl/grpo_trainer.h).

#include <cstdint>
#include <string>

#include "rl/job.h"
#include "rl/train_state.h"

namespace rlft::rl {

/// Trains the policy of `job` with `options` (the `sft:` section). `stop_after` > 0: stop (as if interrupted) once that
/// many steps are complete.
TrainResult run_sft(Job& job, const SftOptions& options, int64_t stop_after = 0);

}  // namespace rlft::rl
