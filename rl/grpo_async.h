#pragma once
// `grpo.rollout.mode: async` — rollout of later steps overlapping training (veRL's
// one-step-off-policy trainer, generalised to k steps).
//
// Rollout threads collect the groups of step s (collect_groups: sampling, rewards, dynamic
// sampling) with a replica of the policy that holds exactly the weights after step
//   v(s) = max(s0, s − k)          k = grpo.rollout.max_staleness, s0 = the process's first step
// while the trainer trains steps v(s) .. s − 1. The lag is fixed, not "whatever is newest":
// so every group of step s is exactly s − v(s) ≤ k versions stale (the bound holds by
// construction and no group is ever too stale to use: dropped groups are 0), and an async run
// is as reproducible as a sync one — the same config, seed and thread counts give the same
// numbers. What differs from sync is only which weights sampled: behaviour log-probs are the
// stale policy's, the trainer recomputes the old log-probs and truncated importance sampling
// (loss.behaviour_is_cap) corrects between them. A resumed run restarts the lag at its
// checkpoint (its first k steps are sampled by the checkpoint's weights), so it does not
// repeat the uninterrupted run bitwise.
//
// Weights: after each step the trainer publishes one copy of what training changes — its
// trainable parameters and its buffers (version v); frozen parameters (a LoRA run's base) are
// not copied at all. Every replica sampling at v points its tensors at that copy, and at the
// trainer's own frozen tensors (set_data: shared, read-only, no second copy). A version is
// freed once every step it samples has started.
//
// Threads: with `workers` W > 1, worker w takes steps s ≡ s0 + w (mod W), each with its own
// replica (then the data cursor of step s is fixed in advance, so dynamic sampling needs
// W = 1). Finished steps wait in a queue of at most `queue` steps. The destructor stops and
// joins the workers; a worker's exception is rethrown by the trainer's next pop().

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "policy/causal_lm.h"
#include "rl/grpo_collect.h"
#include "rl/train_options.h"

namespace rlft::rl {

/// The weights that sample step `step` in a run whose first step here is `first_step`:
/// after max(first_step, step − lag) steps.
inline int64_t sampling_version(int64_t step, int64_t first_step, int64_t lag) {
  return std::max(first_step, step - lag);
}

/// One step's groups as the trainer receives them.
struct AsyncStep {
  CollectedGroups collected;
  int64_t version = 0;       ///< the weights that sampled them: after `version` steps
  int64_t cursor_after = 0;  ///< the data cursor after this step's prompts (a checkpoint's)
  double wait_seconds = 0;   ///< how long the trainer waited for them in pop()
};

/// Where the trainer's groups come from when rollout runs beside training: rollout threads in
/// this process (AsyncRollout) or rollout ranks (rl/grpo_rollout_ranks.h).
class RolloutStage {
 public:
  virtual ~RolloutStage() = default;
  /// Step `step`'s groups (steps in order); blocks until they have come.
  virtual AsyncStep pop(int64_t step) = 0;
  /// The trainer's weights after `version` steps (after each step, versions in order).
  virtual void publish(const policy::CausalLM& policy, int64_t version) = 0;
  /// Once the run has ended or stopped.
  virtual void finish() {}
};

class AsyncRollout : public RolloutStage {
 public:
  /// Collects step `step`'s groups with `replica`, starting at data position `cursor` (advanced
  /// past every prompt drawn). Runs on a worker thread.
  using Collect = std::function<CollectedGroups(policy::CausalLM& replica, int64_t step, int64_t& cursor)>;

  /// `make_replica` builds a model of the policy's architecture (called here, once per
  /// worker); `policy` is the trainer's model, published now as version `first_step`. Steps
  /// [first_step, total_steps) are collected; `prompts_per_step` fixes the cursor of step s
  /// when W > 1.
  AsyncRollout(const RolloutStageOptions& options, const std::function<policy::CausalLM()>& make_replica,
               const policy::CausalLM& policy, int64_t first_step, int64_t total_steps, int64_t cursor,
               int64_t prompts_per_step, Collect collect);
  ~AsyncRollout() override;
  AsyncRollout(const AsyncRollout&) = delete;
  AsyncRollout& operator=(const AsyncRollout&) = delete;

  /// Step `step`'s groups (steps are popped in order); blocks until they are collected.
  /// Rethrows a worker's exception.
  AsyncStep pop(int64_t step) override;
  /// The trainer's weights after `version` steps (call after each step, versions in order).
  void publish(const policy::CausalLM& policy, int64_t version) override;
  /// The version step `step` samples with.
  int64_t version_for(int64_t step) const;

 private:
  using Snapshot = std::shared_ptr<const std::vector<at::Tensor>>;
  void worker_loop(size_t worker);
  static Snapshot snapshot_of(const policy::CausalLM& model);
  void free_versions_locked();

  RolloutStageOptions options_;
  Collect collect_;
  int64_t first_step_, total_steps_, first_cursor_, prompts_per_step_;
  std::vector<policy::CausalLM> replicas_;
  std::vector<std::thread> threads_;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<int64_t, Snapshot> versions_;  // published, still needed
  std::map<int64_t, AsyncStep> done_;     // collected, not yet popped
  std::vector<bool> started_;             // [step − first_step]: a worker took it
  int64_t next_pop_;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace rlft::rl
