#pragma once
// RolloutPool: N worker threads, each with its own policy replica (eval, no grad) and
// Generator, turning prompts into finished Groups pushed into a bounded queue; the trainer
// pops groups and publishes new weights with sync_weights(version).
//
// Versions and staleness. Every group carries the version of the weights that produced it.
// Groups are numbered in the order workers take them (i = 0, 1, …); with
// groups_per_step = n, group i belongs to training step ⌊i/n⌋ (counted from the version
// the pool started with). A worker may start group i only once the trainer's version is at
// least ⌊i/n⌋ − max_staleness, so:
//   - on-policy (kOnPolicy, max_staleness 0): rollout of step t waits for weights t;
//   - async (kAsync, max_staleness k): rollout of step t+1.. t+k overlaps training of t.
// pop() additionally drops any group older than current version − max_staleness (a group
// that finished late), counts it in dropped(), and lets a replacement be started; so every
// group pop() returns satisfies version ≥ current − max_staleness. Stale groups keep their
// behaviour log-probs (Sample::logprobs) for importance correction.
//
// Weights: sync_weights copies the trainer's parameters and buffers once (a snapshot), and
// each worker loads the newest snapshot before it starts its next group; the trainer never
// waits for a generation to finish.
//
// Threads: the destructor (or shutdown()) stops and joins every worker. An exception in a
// worker stops the pool and is rethrown by the next pop() (or sync_weights()) in the caller.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "policy/causal_lm.h"
#include "rollout/generator.h"

namespace rlft::rollout {

enum class PoolMode { kOnPolicy, kAsync };

struct PoolOptions {
  int64_t n_workers = 1;       ///< worker threads, each with a replica (>= 1)
  int64_t queue_capacity = 8;  ///< finished groups held at most before workers wait (>= 1)
  PoolMode mode = PoolMode::kOnPolicy;
  int64_t max_staleness = 1;    ///< kAsync: versions a group may lag the trainer (>= 0); kOnPolicy: 0
  int64_t groups_per_step = 1;  ///< groups the trainer pops per version (>= 1)
  int64_t group_size = 4;       ///< G samples per prompt (>= 1)
  SamplingOptions sampling;
  GenerateOptions generate;  ///< seed, stop ids, max_new_tokens, routing …

  int64_t staleness() const { return mode == PoolMode::kOnPolicy ? 0 : max_staleness; }
  /// Throws rlft::OptionError naming the field ("n_workers", "sampling.top_p" …).
  void validate() const;
};

/// Builds one replica (called once per worker, on the caller's thread, in the constructor).
using ReplicaFactory = std::function<policy::CausalLM()>;
/// The prompt of group `index` (0, 1, …); nullopt = no more prompts. Called under the pool's
/// lock, so it need not be thread-safe.
using PromptSource = std::function<std::optional<std::vector<int64_t>>(int64_t index)>;

class RolloutPool {
 public:
  /// Starts the workers at weights `version` (the replicas' own weights).
  RolloutPool(PoolOptions options, const ReplicaFactory& make_replica, PromptSource prompts, int64_t version = 0);
  ~RolloutPool();
  RolloutPool(const RolloutPool&) = delete;
  RolloutPool& operator=(const RolloutPool&) = delete;

  /// Publishes `source`'s parameters and buffers as `version` (> the current one).
  void sync_weights(const policy::CausalLM& source, int64_t version);
  /// The next finished group (blocking); nullopt once the prompts are exhausted and every
  /// group is out, or once the pool is shut down. Rethrows a worker's exception.
  std::optional<Group> pop();
  /// Stops and joins the workers (idempotent). Groups in flight or queued are discarded.
  void shutdown();

  int64_t version() const;
  int64_t dropped() const;  ///< groups pop() discarded as too stale
  int64_t started() const;  ///< groups workers have taken so far
  int64_t n_workers() const { return static_cast<int64_t>(threads_.size()); }

 private:
  void worker_loop(size_t worker);
  bool may_start_locked() const;
  void rethrow_locked();

  PoolOptions options_;
  PromptSource prompts_;
  std::vector<policy::CausalLM> replicas_;
  std::vector<std::thread> threads_;

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;   // workers wait for room / weights / prompts
  std::condition_variable queue_cv_;  // pop waits for groups
  std::deque<Group> queue_;
  std::shared_ptr<const std::vector<at::Tensor>> weights_;  // newest snapshot (null = the replicas' own)
  int64_t base_version_;
  int64_t version_;
  int64_t started_ = 0;  // groups taken by workers
  int64_t dropped_ = 0;
  int64_t in_flight_ = 0;
  bool exhausted_ = false;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace rlft::rollout
