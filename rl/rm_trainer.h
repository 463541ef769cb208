#pragma once
// Preference reward-model training (`rlft rm train`): a backbone from policy/ with a scalar
// head (reward/reward_model.h) learns from pairs with the Bradley–Terry loss
//
//   loss = −log σ(r_chosen − r_rejected − margin)  [+ center_coef · mean((r_chosen + r_rejected)²)]
//
// Pairs come from the store (`rm.pairs: store`: imported feedback pairs, plus the labels
// people gave in `rlft serve` — on stored pairs, and on two stored rollouts; ties and
// "both bad" carry no preference and are left out) or from a JSONL file in any import format.
// A seeded `rm.eval_fraction` of the pairs is held out; accuracy = share of held-out pairs
// with r_chosen > r_rejected.

#include <cstdint>
#include <string>
#include <vector>

#include "rl/job.h"
#include "rl/sft_trainer.h"

namespace rlft::rl {

struct PreferenceText {
  std::string prompt, chosen, rejected;
  double margin = 0.0;
  std::string origin;  ///< "pair 12", "label 3", "file.jsonl:7"
};

/// The pairs `rm.pairs` names. Throws rlft::Error (InputError for a bad line, with file:line).
std::vector<PreferenceText> load_preference_texts(const RmOptions& options, const std::string& store_path);

/// Trains the reward model of `job` (its policy is the backbone) on `pairs` with `options`
/// (the `rm:` section).
TrainResult run_rm(Job& job, const RmOptions& options, const std::vector<PreferenceText>& pairs,
                   int64_t stop_after = 0);

}  // namespace rlft::rl
