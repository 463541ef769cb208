#pragma once
// Preference pairs for the trainers that learn from them (`rlft rm train`, `rlft dpo`): from
// the store (`pairs: store`: imported feedback pairs, plus the labels people gave in `rlft
// serve` — on stored pairs, and on two stored rollouts; ties and "both bad" carry no
// preference and are left out) or from a JSONL file in any import format. Pairs whose chosen
// and rejected replies are the same text teach nothing: they are skipped and counted. A
// seeded share is held out (split_preferences).

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "rl/train_options.h"

namespace rlft::rl {

struct PreferenceText {
  /// As text (a chat as "role: content" lines; a label on two rollouts: the prompt as the policy
  /// saw it): what a trained tokenizer learns from and what tells identical replies apart.
  std::string prompt, chosen, rejected;
  double margin = 0.0;
  std::string origin;  ///< "pair 12", "label 3", "file.jsonl:7"
  /// What a model trained on the pair reads (a policy in `rlft dpo`, a reward model through
  /// reward::RewardInput): the prompt as chat messages (a text prompt is one user message),
  /// or — for a label on two rollouts — `prompt` already rendered as the policy saw it; and the
  /// replies' text (a chat reply's contents, without roles).
  std::vector<data::ChatMessage> prompt_messages;
  bool prompt_rendered = false;
  std::string chosen_reply, rejected_reply;
};

struct PreferenceSet {
  std::vector<PreferenceText> pairs;
  int64_t identical = 0;  ///< pairs skipped because chosen and rejected are the same
};

/// The pairs `source` names (`section` names the config section in messages: "rm", "dpo").
/// Throws rlft::Error (InputError for a bad line, with file:line).
PreferenceSet load_preference_texts(const PreferenceSource& source, const std::string& store_path,
                                    const std::string& section);

/// Checks there is something to learn from: an error naming where pairs come from otherwise.
void check_enough_pairs(const PreferenceSet& set, const std::string& command);

/// The seeded split: `eval_fraction` of the pairs held out (they never reach the optimizer).
struct PreferenceSplit {
  std::vector<const PreferenceText*> train, eval;
};
PreferenceSplit split_preferences(const std::vector<PreferenceText>& all, double eval_fraction, uint64_t seed);

}  // namespace rlft::rl
