#include "rl/rank_figures.h"

#include <algorithm>

#include "core/error.h"

namespace rlft::rl {

void RankFigures::add(const std::string& name, double local) {
  RLFT_CHECK(std::find(names_.begin(), names_.end(), name) == names_.end(), "figure '{}' added twice", name);
  names_.push_back(name);
  values_.push_back(local);
}

void RankFigures::sum_over(dist::Context& context) {
  values_ = context.sum(values_);
}

void RankFigures::max_over(dist::Context& context) {
  values_ = context.max(values_);
}

double RankFigures::operator[](const std::string& name) const {
  const auto it = std::find(names_.begin(), names_.end(), name);
  RLFT_CHECK(it != names_.end(), "no figure '{}'", name);
  return values_[static_cast<size_t>(it - names_.begin())];
}

reward::RewardScores all_gather_scores(dist::Context& context, const reward::RewardScores& local) {
  if (context.world_size() == 1) return local;
  reward::RewardScores out;
  out.names = local.names;
  out.weights = local.weights;
  out.total = context.all_gather(local.total);
  for (const auto& part : local.parts) out.parts.push_back(context.all_gather(part));
  out.seconds = context.max(local.seconds);
  return out;
}

}  // namespace rlft::rl
