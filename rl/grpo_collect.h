#pragma once
// GRPO's first stage: the step's groups of completions, scored.
//
// Each step takes P prompts from the global data order, starting at the step's cursor. With
// several ranks each takes its share (RankGroups); each rank rolls out G completions of its
// prompts and scores them. With grpo.dynamic_sampling (DAPO §3.2, arXiv 2503.14476) a group
// whose rewards are all equal is dropped and fresh prompts are drawn, in up to
// max_resample_rounds more rounds; the last round keeps whatever it gets, so a step never
// loops without end.
//
// Legend: P prompts per step (global), W ranks, R this rank, m mini-batches, G group size,
//         P_local = P / W groups per rank, n the groups of one round.

#include <cstdint>
#include <functional>
#include <vector>

#include "core/distributed.h"
#include "data/dataset.h"
#include "reward/combine.h"
#include "rollout/generator.h"

namespace rlft::rl {

/// Which of the step's P global groups rank R holds. Every optimizer step takes whole groups
/// from every rank: in each of the m mini-batches of P/m groups, rank R holds the R-th run of
/// P/(m·W) groups. Its local groups are its runs in mini-batch order. With one rank, local
/// group i is global group i.
class RankGroups {
 public:
  /// Throws ConfigError unless m·W divides P (with W > 1).
  RankGroups(int64_t prompts, int64_t mini_batches, int64_t world, int64_t rank);
  int64_t global_count() const { return prompts_; }          ///< P
  int64_t local_count() const { return prompts_ / world_; }  ///< P_local
  /// Global index in [0, P) of local group `local` in [0, P_local).
  int64_t global(int64_t local) const;

 private:
  int64_t prompts_, mini_batches_, world_, rank_;
  int64_t run_;  // P/(m·W): consecutive groups of one rank in a mini-batch (P with one rank)
};

/// Groups of completions with their prompts' examples and scores.
struct ScoredGroups {
  std::vector<rollout::Group> groups;          ///< n groups, G samples each
  std::vector<const data::Example*> examples;  ///< n, the prompt each group answers
  reward::RewardScores scores;                 ///< n·G completions, row p·G + k = group p, sample k
  rollout::GenerateStats generate;             ///< prefill/decode tokens and seconds
  double rollout_seconds = 0.0;
  double reward_seconds = 0.0;
};

/// Rolls out and scores the prompts at global data positions `positions` (one group each,
/// in order).
using GroupSource = std::function<ScoredGroups(const std::vector<int64_t>& positions)>;

struct CollectOptions {
  int64_t group_size = 8;           ///< G
  bool dynamic_sampling = false;    ///< drop zero-variance groups and draw fresh prompts (DAPO)
  int64_t max_resample_rounds = 4;  ///< rounds after the first; the last keeps every group
};

/// A step's P_local groups on this rank, and what it took to get them.
struct CollectedGroups {
  ScoredGroups kept;                 ///< at most P_local groups (fewer when the rounds ran out)
  int64_t drawn_groups = 0;          ///< groups generated on this rank, kept or not
  int64_t zero_variance_groups = 0;  ///< among the drawn ones: all G rewards equal
};

/// Collects this rank's groups of one step. Round 0 draws the step's P prompts (this rank
/// its share, at cursor + RankGroups::global(i)); each resampling round draws, after every
/// rank's count of missing groups (one all-gather), as many fresh prompts as each rank still
/// needs, in rank order. `cursor` advances by every prompt drawn on any rank, so all ranks
/// agree on it. A resampling round that no rank needs ends the collection.
CollectedGroups collect_groups(const RankGroups& layout, const CollectOptions& options, int64_t& cursor,
                               dist::Context& context, const GroupSource& source);

/// True when the G rewards starting at `totals` are all equal (such a group has no signal).
bool zero_variance_group(const double* totals, int64_t group_size);

}  // namespace rlft::rl
