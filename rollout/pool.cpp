// The worker pool. One mutex guards the queue, the counters and the weight snapshot; a
// worker holds it only to take work and to publish a group, never while it generates.
#include "rollout/pool.h"

#include <torch/torch.h>

#include "core/error.h"

namespace rlft::rollout {
namespace {

std::vector<at::Tensor> state_tensors(const policy::CausalLM& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model->parameters()) out.push_back(p);
  for (const auto& b : model->buffers()) out.push_back(b);
  return out;
}

}  // namespace

void PoolOptions::validate() const {
  RLFT_CHECK_OPTION(n_workers >= 1, "n_workers", n_workers, "must be >= 1");
  RLFT_CHECK_OPTION(queue_capacity >= 1, "queue_capacity", queue_capacity, "must be >= 1");
  RLFT_CHECK_OPTION(max_staleness >= 0, "max_staleness", max_staleness, "must be >= 0");
  RLFT_CHECK_OPTION(groups_per_step >= 1, "groups_per_step", groups_per_step, "must be >= 1");
  RLFT_CHECK_OPTION(group_size >= 1, "group_size", group_size, "must be >= 1");
  validate_within("sampling", sampling);
}

RolloutPool::RolloutPool(PoolOptions options, const ReplicaFactory& make_replica, PromptSource prompts, int64_t version)
    : options_(std::move(options)), prompts_(std::move(prompts)), base_version_(version), version_(version) {
  options_.validate();
  RLFT_CHECK(static_cast<bool>(prompts_), "rollout pool: no prompt source");
  for (int64_t w = 0; w < options_.n_workers; ++w) {
    auto replica = make_replica();
    replica->eval();
    for (auto& p : replica->parameters()) p.set_requires_grad(false);
    replicas_.push_back(std::move(replica));
  }
  for (size_t w = 0; w < replicas_.size(); ++w) threads_.emplace_back([this, w] { worker_loop(w); });
}

RolloutPool::~RolloutPool() {
  shutdown();
}

void RolloutPool::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  queue_cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

int64_t RolloutPool::version() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return version_;
}

int64_t RolloutPool::dropped() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return dropped_;
}

int64_t RolloutPool::started() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return started_;
}

void RolloutPool::rethrow_locked() {
  if (error_) std::rethrow_exception(error_);
}

bool RolloutPool::may_start_locked() const {
  if (exhausted_) return false;
  // Room: finished + running groups never exceed the queue's capacity.
  if (static_cast<int64_t>(queue_.size()) + in_flight_ >= options_.queue_capacity) return false;
  const int64_t step = (started_ - dropped_) / options_.groups_per_step;  // the step this group serves
  return base_version_ + step <= version_ + options_.staleness();
}

void RolloutPool::sync_weights(const policy::CausalLM& source, int64_t version) {
  std::vector<at::Tensor> snapshot;
  {
    at::NoGradGuard no_grad;
    for (const auto& t : state_tensors(source)) snapshot.push_back(t.detach().clone());
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    rethrow_locked();
    RLFT_CHECK(version > version_, "sync_weights: version {} is not newer than the current {}", version, version_);
    weights_ = std::make_shared<const std::vector<at::Tensor>>(std::move(snapshot));
    version_ = version;
    // Queued groups that are now too stale go at once (their replacements may start).
    const int64_t oldest = version_ - options_.staleness();
    for (auto it = queue_.begin(); it != queue_.end();)
      if (it->policy_version < oldest) {
        it = queue_.erase(it);
        ++dropped_;
      } else {
        ++it;
      }
  }
  work_cv_.notify_all();
}

std::optional<Group> RolloutPool::pop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    queue_cv_.wait(lock, [&] { return stop_ || error_ || !queue_.empty() || (exhausted_ && in_flight_ == 0); });
    rethrow_locked();
    if (stop_) return std::nullopt;  // shut down: groups still queued are discarded
    if (!queue_.empty()) {
      Group g = std::move(queue_.front());
      queue_.pop_front();
      work_cv_.notify_all();
      if (g.policy_version < version_ - options_.staleness()) {  // finished too late
        ++dropped_;
        continue;
      }
      return g;
    }
    return std::nullopt;  // stopped, or every prompt is done
  }
}

void RolloutPool::worker_loop(size_t worker) {
  auto& replica = replicas_[worker];
  Generator generator(replica);
  std::shared_ptr<const std::vector<at::Tensor>> loaded;
  bool running = false;  // this worker counts in in_flight_
  try {
    for (;;) {
      int64_t index = 0, version = 0;
      std::vector<int64_t> prompt;
      std::shared_ptr<const std::vector<at::Tensor>> weights;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        work_cv_.wait(lock, [&] { return stop_ || error_ || may_start_locked(); });
        if (stop_ || error_) return;
        index = started_;
        auto p = prompts_(index);
        if (!p) {
          exhausted_ = true;
          queue_cv_.notify_all();
          work_cv_.notify_all();
          return;
        }
        prompt = std::move(*p);
        ++started_;
        ++in_flight_;
        running = true;
        version = version_;
        weights = weights_;
      }
      if (weights && weights != loaded) {  // load the newest snapshot
        at::NoGradGuard no_grad;
        auto mine = state_tensors(replica);
        RLFT_CHECK(mine.size() == weights->size(), "sync_weights: {} tensors for a replica with {}", weights->size(),
                   mine.size());
        for (size_t i = 0; i < mine.size(); ++i) mine[i].copy_((*weights)[i]);
        loaded = weights;
      }
      Request request{std::move(prompt), options_.group_size, static_cast<uint64_t>(index)};
      auto groups = generator.generate({request}, options_.sampling, options_.generate);
      groups.front().policy_version = version;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        --in_flight_;
        running = false;
        queue_.push_back(std::move(groups.front()));
      }
      queue_cv_.notify_all();
    }
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      if (running) --in_flight_;
    }
    queue_cv_.notify_all();
    work_cv_.notify_all();
  }
}

}  // namespace rlft::rollout
