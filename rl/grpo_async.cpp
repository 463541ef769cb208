#include "rl/grpo_async.h"

#include <ATen/Parallel.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "rl/step_log.h"

namespace rlft::rl {
namespace {

// A model's parameters and buffers in a fixed order (the same for the policy and a replica
// built from its config).
std::vector<at::Tensor> async_model_tensors(const policy::CausalLM& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model->named_parameters()) out.push_back(p.value());
  for (const auto& b : model->named_buffers()) out.push_back(b.value());
  return out;
}

}  // namespace

AsyncRollout::AsyncRollout(const RolloutStageOptions& options, const std::function<policy::CausalLM()>& make_replica,
                           const policy::CausalLM& policy, int64_t first_step, int64_t total_steps, int64_t cursor,
                           int64_t prompts_per_step, Collect collect)
    : options_(options),
      collect_(std::move(collect)),
      first_step_(first_step),
      total_steps_(total_steps),
      first_cursor_(cursor),
      prompts_per_step_(prompts_per_step),
      started_(static_cast<size_t>(std::max<int64_t>(0, total_steps - first_step)), false),
      next_pop_(first_step) {
  if (options_.queue == 0) options_.queue = std::max<int64_t>(1, options_.max_staleness);
  const auto names = [](const policy::CausalLM& m) {
    std::vector<std::string> out;
    for (const auto& p : m->named_parameters()) out.push_back(p.key());
    for (const auto& b : m->named_buffers()) out.push_back(b.key());
    return out;
  };
  const auto policy_names = names(policy);
  for (int64_t w = 0; w < options_.workers; ++w) {
    auto replica = make_replica();
    RLFT_CHECK(names(replica) == policy_names, "async rollout: a replica's tensors are not the policy's");
    replica->eval();
    for (auto& p : replica->parameters()) p.set_requires_grad(false);
    replicas_.push_back(replica);
  }
  versions_[first_step_] = snapshot_of(policy);
  for (size_t w = 0; w < replicas_.size(); ++w) threads_.emplace_back([this, w] { worker_loop(w); });
}

AsyncRollout::~AsyncRollout() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

int64_t AsyncRollout::version_for(int64_t step) const {
  return sampling_version(step, first_step_, options_.max_staleness);
}

AsyncRollout::Snapshot AsyncRollout::snapshot_of(const policy::CausalLM& model) {
  torch::NoGradGuard ng;
  auto copy = std::make_shared<std::vector<at::Tensor>>();
  // What training changes is copied: trainable parameters and buffers (a router's bias). A
  // frozen parameter (LoRA's base) never changes: replicas share the trainer's own tensor.
  for (const auto& p : model->parameters()) copy->push_back(p.requires_grad() ? p.detach().clone() : p.detach());
  for (const auto& b : model->buffers()) copy->push_back(b.detach().clone());
  return copy;
}

void AsyncRollout::free_versions_locked() {
  for (auto it = versions_.begin(); it != versions_.end();) {
    const int64_t v = it->first;
    bool needed = false;
    for (int64_t s = std::max(first_step_, v); s <= std::min(total_steps_ - 1, v + options_.max_staleness); ++s)
      if (version_for(s) == v && !started_[static_cast<size_t>(s - first_step_)]) needed = true;
    it = needed ? std::next(it) : versions_.erase(it);
  }
}

void AsyncRollout::publish(const policy::CausalLM& policy, int64_t version) {
  // Only a version some later step samples with is copied.
  const int64_t step = version + options_.max_staleness;
  if (step >= total_steps_ || version_for(step) != version) return;
  auto snapshot = snapshot_of(policy);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    versions_[version] = std::move(snapshot);
    free_versions_locked();
  }
  cv_.notify_all();
}

AsyncStep AsyncRollout::pop(int64_t step) {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  RLFT_CHECK(step == next_pop_, "async rollout: step {} popped, step {} expected", step, next_pop_);
  cv_.wait(lock, [&] { return error_ || done_.count(step) > 0; });
  if (error_) std::rethrow_exception(error_);
  AsyncStep out = std::move(done_.at(step));
  done_.erase(step);
  next_pop_ = step + 1;
  lock.unlock();
  cv_.notify_all();
  out.wait_seconds = seconds_since(t0);
  return out;
}

void AsyncRollout::worker_loop(size_t worker) {
  const int64_t W = static_cast<int64_t>(replicas_.size());
  auto& replica = replicas_[worker];
  int64_t replica_version = -1;
  int64_t cursor = first_cursor_;
  try {
    if (options_.threads > 0) at::set_num_threads(static_cast<int>(options_.threads));
    for (int64_t s = first_step_ + static_cast<int64_t>(worker); s < total_steps_; s += W) {
      const int64_t v = version_for(s);
      Snapshot weights;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || (versions_.count(v) > 0 && s < next_pop_ + options_.queue); });
        if (stop_) return;
        weights = versions_.at(v);
        started_[static_cast<size_t>(s - first_step_)] = true;
        free_versions_locked();
      }
      if (replica_version != v) {  // the replica's tensors become the published copy
        torch::NoGradGuard ng;
        auto tensors = async_model_tensors(replica);
        RLFT_CHECK(tensors.size() == weights->size(), "async rollout: {} tensors published, the replica has {}",
                   weights->size(), tensors.size());
        for (size_t i = 0; i < tensors.size(); ++i) tensors[i].set_data((*weights)[i]);
        replica_version = v;
      }
      if (W > 1) cursor = first_cursor_ + (s - first_step_) * prompts_per_step_;
      AsyncStep out;
      out.version = v;
      out.collected = collect_(replica, s, cursor);
      for (auto& g : out.collected.kept.groups) g.policy_version = v;
      out.cursor_after = cursor;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        done_.emplace(s, std::move(out));
      }
      cv_.notify_all();
    }
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      stop_ = true;
    }
    cv_.notify_all();
  }
}

}  // namespace rlft::rl
