#pragma once
// Where the time of a forward goes, by part: attention (with its norm), the feed-forward
// block (MoE or MLP, with its norm) and the LM head. Off unless a caller installs a
// ForwardProfile for its thread (the generator does, for its decode steps, so that
// `rlft bench rollout` can split a decode step); then each part adds its wall-clock seconds.
// A part's time includes the threaded kernels it waits for, so the parts add up to the
// forward's time minus what lies between them (embedding, residual adds, the cache's upkeep).

#include <chrono>

namespace rlft::policy {

struct ForwardProfile {
  double attention = 0.0;  ///< seconds in input_layernorm + self-attention (every layer)
  double ffn = 0.0;        ///< seconds in post_attention_layernorm + MoE/MLP (every layer)
  double head = 0.0;       ///< seconds in the final norm + LM head
};

/// The calling thread's profile (nullptr: not timed).
ForwardProfile* forward_profile();

/// Installs `profile` for the calling thread for its lifetime; restores the previous one.
class ScopedForwardProfile {
 public:
  explicit ScopedForwardProfile(ForwardProfile* profile);
  ~ScopedForwardProfile();
  ScopedForwardProfile(const ScopedForwardProfile&) = delete;
  ScopedForwardProfile& operator=(const ScopedForwardProfile&) = delete;

 private:
  ForwardProfile* previous_;
};

/// Adds the seconds of its scope to `slot` when a profile is installed (`slot` points into it).
class PartTimer {
 public:
  explicit PartTimer(double ForwardProfile::*part) : profile_(forward_profile()), part_(part) {
    if (profile_) start_ = std::chrono::steady_clock::now();
  }
  ~PartTimer() {
    if (profile_) profile_->*part_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  PartTimer(const PartTimer&) = delete;
  PartTimer& operator=(const PartTimer&) = delete;

 private:
  ForwardProfile* profile_;
  double ForwardProfile::*part_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace rlft::policy
