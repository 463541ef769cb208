#pragma once
// Preference optimisation of the policy itself (`rlft dpo CONFIG`): the DPO family
// (rl/dpo_loss.h) on preference pairs from the store or a JSONL file (rl/preference_pairs.h).
//
//   loss = mean over the batch's pairs of the preference loss (dpo.loss: sigmoid | ipo | simpo)
//        + dpo.sft_weight · mean over pairs of −log π(y_c|x) / |y_c|     (RPO, Pang et al. 2024)
//        + balance losses                                               (dpo.balance)
//
// A pair is two rows of one forward: the prompt rendered as the policy sees prompts (the chat
// template, prompt.chat or prompt.template) followed by each reply as Job::encode_reply writes
// it; the log-probs summed over a reply's tokens are its sequence log-prob. The reference
// log-probs (sigmoid, ipo) are computed once per pair before the first step — by the policy as
// the run starts, or under LoRA by the policy with its adapters off — and kept in each
// checkpoint (trainer_state/reference_logps.safetensors), so a resumed run needs no reference
// model. A seeded dpo.eval_fraction of the pairs is held out: eval/rewards/accuracies is the
// share of held-out pairs whose chosen reply gets the larger implicit reward. Checkpoints,
// resume, SIGINT/SIGTERM and data parallelism as in every trainer (rl/train_state.h).

#include <cstdint>

#include "rl/job.h"
#include "rl/preference_pairs.h"
#include "rl/train_state.h"

namespace rlft::rl {

/// Trains the policy of `job` on `pairs` with `options` (the `dpo:` section). `stop_after` >
/// 0: stop (as if interrupted) once that many steps are complete.
TrainResult run_dpo(Job& job, const DpoOptions& options, const PreferenceSet& pairs, int64_t stop_after = 0);

}  // namespace rlft::rl
