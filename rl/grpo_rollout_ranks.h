#pragma once
// `distributed.rollout_ranks: R` — the rollout-workers stage on ranks of its own.
//
// Of W ranks the first T = W − R train (the trainer ranks, rank 0 among them: it writes the run)
// and the last R only sample and score (the rollout ranks). Rollout rank j samples step s with
// the weights after step
//   v(s) = max(s0, s − k)        k = grpo.rollout.max_staleness in async mode, 0 in sync mode
// (s0 = the first step of this process, a checkpoint's on resume), as async rollout does in
// one process (rl/grpo_async.h): the lag is fixed, so no group is ever too stale (dropped
// groups are 0) and the run is as reproducible as the config, seed and thread counts make it.
// With k = 0 the groups are the ones the trainer ranks would have sampled themselves (the same
// weights, the same per-prompt seeds): a sync run on rollout ranks gives the metrics of a sync
// run without them.
//
// Work: each trainer rank t holds its RankGroups share of the step's prompts (the layout over
// the T trainer ranks); rollout rank j samples the j-th of R contiguous parts of every trainer
// rank's share, all of them in one batch.
//
// Messages go through the job's store (c10d TCPStore, hosted by rank 0); the weights through a
// process group of rank 0 and the rollout ranks (Gloo broadcast, or NCCL on CUDA). Keys:
//   rlft/rollout/start/j          rank 0 → j: "first_step cursor"
//   rlft/rollout/groups/s/t/j     j → trainer rank t: its part of step s's scored groups (or an
//                                 error: the rollout rank's own message, shown by the trainer)
//   rlft/rollout/control/v/j      rank 0 → j: "weights" (then version v is broadcast: the
//                                 trainable parameters and the buffers) or "stop"
//   rlft/rollout/done/j           j → rank 0: finished
// A rank waiting for a message fails naming the writer once its heartbeat stops (3 s) or after
// distributed.timeout_s; a dead rank 0 takes the store with it, which the rollout ranks report.
// Only versions some step samples with are sent: the last k are not.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rl/grpo_async.h"
#include "rl/grpo_collect.h"
#include "rl/job.h"
#include "rl/train_options.h"

namespace rlft::rl {

/// The trainer ranks' side.
class RolloutRankLink : public RolloutStage {
 public:
  /// Rank 0 tells every rollout rank where the run starts (step `first_step`, data position
  /// `cursor`); the rollout ranks hold the weights of `first_step` already (the job's set-up).
  RolloutRankLink(Job& job, const GrpoOptions& g, int64_t first_step, int64_t total_steps, int64_t cursor);
  /// This trainer rank's groups of step `step` (steps in order), from every rollout rank.
  AsyncStep pop(int64_t step) override;
  /// Rank 0, after each step: the weights after `version` steps to the rollout ranks, when a
  /// later step samples with them. Other trainer ranks: nothing.
  void publish(const policy::CausalLM& policy, int64_t version) override;
  /// Rank 0: tells the rollout ranks to stop (they may be waiting for weights) and waits until
  /// each has. Call once the run has ended or stopped; other trainer ranks: nothing.
  void finish() override;

 private:
  Job& job_;
  int64_t lag_, first_step_, total_steps_, first_cursor_, prompts_per_step_;
  int trainers_, rollout_ranks_;
  int64_t next_version_;  // the next version rank 0 would send
};

/// A rollout rank's run: step by step, the weights it needs (from rank 0), then its parts of
/// every trainer rank's groups, sampled and scored by `source`, into the store; until the last
/// step or rank 0's stop. Returns the steps it sampled.
int64_t run_rollout_rank(Job& job, const GrpoOptions& g, const GroupSource& source);

/// The message of one trainer rank's part of a step (exposed for tests): the groups with their
/// examples as indices into `train`, scores, counts and timings, and the policy version.
std::string encode_groups(const CollectedGroups& groups, int64_t version, const std::vector<data::Example>& train);
/// Reads encode_groups' bytes; routing tensors go to `device`. Throws rlft::Error for bytes
/// that are not such a message.
CollectedGroups decode_groups(const std::string& bytes, int64_t& version, const std::vector<data::Example>& train,
                              at::Device device = at::kCPU);

}  // namespace rlft::rl
