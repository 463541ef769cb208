// The built-in rewards, registered in one visible place. A learned preference reward model
// (reward/reward_model.h) registers here the same way.
#include "reward/reward.h"
#include "reward/reward_model.h"
#include "reward/rules/blocklist.h"
#include "reward/rules/countdown.h"
#include "reward/rules/exact_match.h"
#include "reward/rules/format.h"
#include "reward/rules/length.h"
#include "reward/rules/math_answer.h"
#include "reward/rules/repetition.h"

namespace rlft::reward {

void register_builtin_rewards(RewardRegistry& registry) {
  registry.add("math_answer", make_math_answer_reward);
  registry.add("exact_match", make_exact_match_reward);
  registry.add("format", make_format_reward);
  registry.add("countdown", make_countdown_reward);
  registry.add("length", make_length_reward);
  registry.add("repetition", make_repetition_reward);
  registry.add("blocklist", make_blocklist_reward);
  registry.add("reward_model", make_reward_model_reward);
}

RewardRegistry builtin_rewards() {
  RewardRegistry registry("reward");
  register_builtin_rewards(registry);
  return registry;
}

}  // namespace rlft::reward
