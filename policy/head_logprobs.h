#pragma once
// The LM head fused with log-softmax and gather, chunk by chunk over tokens: the log-probs of
// chosen tokens (and the entropies) without ever holding all N × V logits.
//
//     z_n      = (h_n · Wᵀ) / temperature                    [V], float32 (matmul in `matmul_dtype`;
//                                                             float64 throughout for a float64 matmul)
//     logp_n   = log_softmax(z_n)[target_n]                  rollout/logprobs.h's quantity
//     entropy_n = −Σ_v p_v log p_v,  p = softmax(z_n)
//
// Forward keeps only the [N] results; backward recomputes each chunk's logits from the saved
// hidden states and weight instead of storing them (TRL's selective log-softmax, Liger's
// fused linear cross-entropy), so memory is O(chunk × V) whatever N is:
//
//     ∂logp_n/∂z_n    = onehot(target_n) − p_n
//     ∂entropy_n/∂z_n = −p_n ⊙ (log p_n + entropy_n)
//
// Results equal the unchunked computation (head, then log_softmax and gather) to float32
// rounding, values and gradients (tests/policy/head_logprobs_test.cpp).
//
// Legend: N tokens, D model width, V vocabulary, c tokens per chunk.

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

namespace rlft::policy {

struct HeadLogprobOptions {
  double temperature = 1.0;  ///< the logits are divided by it (<= 0 means 1, as rollout records)
  bool entropy = false;      ///< also the token entropies
  int64_t chunk_tokens = 1;  ///< c: tokens whose logits exist at once (>= 1)
  /// The matmul's dtype: the autocast dtype under autocast (as the unchunked head would run),
  /// else the weight's. nullopt = decide from the current autocast state.
  std::optional<at::ScalarType> matmul_dtype;
};

struct HeadLogprobs {
  at::Tensor logp;     ///< [N] float32 (float64 for a float64 matmul)
  at::Tensor entropy;  ///< [N], the same dtype (when asked for)
};

/// hidden [N, D] (any float dtype), weight [V, D], targets [N] int64 in [0, V). Autograd
/// flows to hidden and weight (when they require it).
HeadLogprobs head_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                           const HeadLogprobOptions& options);

/// Tokens per chunk so that one chunk's float32 logits take about `chunk_mib` MiB (>= 1 token).
int64_t chunk_tokens_for(double chunk_mib, int64_t vocab_size);

}  // namespace rlft::policy
