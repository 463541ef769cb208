#pragma once
// What a training run will hold at its peak, estimated from the model's shape and the run's
// options before the first step (docs/training.md, "Memory"): the fit check refuses a run
// that cannot fit with a message saying what to lower, instead of the kernel's OOM killer
// ending it hours later; `rlft bench train` prints the same breakdown.
//
// Bytes, float32 master weights and AdamW:
//   weights      every parameter (the reference model's too when a KL penalty needs one)
//   gradients    every trainable parameter
//   moments      AdamW's two moments of every trainable parameter
//   activations  one micro-batch's training forward, kept for backward: per token and layer
//                the layer's linear intermediates, plus the attention probabilities (H per
//                token per key); with activation checkpointing one [tokens, D] per layer plus
//                one layer's intermediates (the recomputation); plus the chunked LM head
//   rollout      the KV cache of a rollout batch and its last-position logits
// The peak is weights + gradients + moments + max(activations, rollout) + a fixed runtime
// allowance. It is an estimate (the allocator and LibTorch add their own): the check refuses
// only when the estimate alone exceeds what is available.

#include <cstdint>
#include <string>
#include <vector>

#include "policy/model_config.h"

namespace rlft::rl {

/// The work one step of a run does, in the terms the estimate needs.
struct MemoryWorkload {
  int64_t n_params = 0;          ///< every parameter of the policy
  int64_t n_trainable = 0;       ///< those the optimizer updates
  bool reference = false;        ///< a frozen reference model is held (KL penalty)
  int64_t forward_tokens = 0;    ///< padded tokens of the largest training forward (micro-batch)
  int64_t longest_sequence = 0;  ///< tokens of the longest training row (attention is quadratic in it)
  bool activation_checkpointing = false;
  double logits_chunk_mb = 64;  ///< memory.logits_chunk_mb
  int64_t rollout_rows = 0;     ///< sequences generated together (0 = no rollout: SFT)
  int64_t rollout_tokens = 0;   ///< prompt + completion tokens of each (the KV cache's length)
  /// Async rollout (grpo.rollout.mode: async): rollout runs beside training, so the KV caches
  /// of `rollout_workers` replicas and the training activations are held at once, and up to
  /// `published_versions` copies of the trainable weights wait for the steps that sample with
  /// them (0 = sync).
  int64_t published_versions = 0;
  int64_t rollout_workers = 1;
};

struct MemoryEstimate {
  double weights = 0, gradients = 0, moments = 0, reference = 0, activations = 0, rollout = 0, runtime = 0;  ///< bytes
  double published = 0;         ///< async rollout: copies of the trainable weights (bytes)
  bool rollout_beside = false;  ///< async rollout: activations and rollout at once
  double peak() const;
  /// "weights 2.39 GB, gradients 2.39 GB, …, peak 10.4 GB".
  std::string describe() const;
};

MemoryEstimate estimate_memory(const policy::ModelConfig& config, const MemoryWorkload& work);

/// Throws ConfigError when `estimate` exceeds `available_bytes`, naming what to lower
/// (`knobs`: "grpo.micro_batch_tokens = 0", …, each with its current value).
void check_fit(const MemoryEstimate& estimate, double available_bytes, const std::vector<std::string>& knobs);

}  // namespace rlft::rl
