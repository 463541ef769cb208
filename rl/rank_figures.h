#pragma once
// A step's figures reduced over ranks by name: every rank adds the same names in the same
// order, then one collective reduces them all (no positional indices to keep in step); and
// the reward scores of every rank.

#include <string>
#include <utility>
#include <vector>

#include "core/distributed.h"
#include "reward/combine.h"

namespace rlft::rl {

class RankFigures {
 public:
  /// Adds a figure with this rank's value; names must be unique.
  void add(const std::string& name, double local);
  /// Replaces every value by its sum over ranks (one all-reduce).
  void sum_over(dist::Context& context);
  /// Replaces every value by its maximum over ranks (one all-reduce).
  void max_over(dist::Context& context);
  /// The value of `name`; throws rlft::Error for a name never added.
  double operator[](const std::string& name) const;

 private:
  std::vector<std::string> names_;
  std::vector<double> values_;
};

/// Every rank's scores concatenated in rank order (totals and parts; seconds are the
/// slowest rank's). `local` must carry the part names even when it holds no rows.
reward::RewardScores all_gather_scores(dist::Context& context, const reward::RewardScores& local);

}  // namespace rlft::rl
