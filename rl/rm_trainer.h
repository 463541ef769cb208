#pragma once
// Preference reward-model training (`rlft rm train`): a backbone from policy/ with a scalar
// head (reward/reward_model.h) learns from pairs with the Bradley–Terry loss
//
//   loss = −log σ(r_chosen − r_rejected − margin)  [+ center_coef · mean((r_chosen + r_rejected)²)]
//
// Pairs come from the store or a JSONL file (rl/preference_pairs.h). A seeded
// `rm.eval_fraction` of the pairs is held out; accuracy = share of held-out pairs with
// r_chosen > r_rejected.

#include <cstdint>
#include <string>
#include <vector>

#include "rl/job.h"
#include "rl/preference_pairs.h"
#include "rl/sft_trainer.h"

namespace rlft::rl {

/// Trains the reward model of `job` (its policy is the backbone) on `pairs` with `options`
/// (the `rm:` section).
TrainResult run_rm(Job& job, const RmOptions& options, const std::vector<PreferenceText>& pairs,
                   int64_t stop_after = 0);

}  // namespace rlft::rl
