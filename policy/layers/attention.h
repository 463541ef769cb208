#pragma once
// Causal self-attention with grouped-query heads (GQA; MHA when H_kv = H), RoPE, optional
// q/k/v biases (Qwen2) or per-head q/k RMSNorm (Qwen3), an optional sliding window with
// sink tokens, and the KV cache. Also the two pieces MLA shares: the mask and the kernel.
//
// Legend: B rows, T tokens of this call, S keys (cached + new), D model width, H query
// heads, H_kv key/value heads, G = H / H_kv, d head width.
//
// Visibility is decided by positions only: query at position p sees a key at position k
// when k >= 0 (not padding), k <= p (causal), and — under a window W — p - k < W or
// k < S_sink; rows packed with several sequences also need equal segment ids.

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "policy/kv_cache.h"
#include "policy/layers/linear.h"
#include "policy/layers/rms_norm.h"
#include "policy/layers/rope.h"

namespace rlft::policy {

/// What every attention layer gets per forward.
struct AttentionInputs {
  at::Tensor positions;           ///< [B, T] int64 query positions, -1 = padding
  at::Tensor segments;            ///< [B, T] int64 packed-sequence ids, or undefined (no cache only)
  LayerKvCache* cache = nullptr;  ///< this layer's cache, or null
  at::Tensor next_positions;      ///< [B] int64 with a cache: the first position of this call per row
};

/// [B, 1, T, S] bool: query t may see key s (see the top of this file).
at::Tensor attention_mask(const at::Tensor& query_positions, const at::Tensor& key_positions, int64_t window,
                          int64_t n_sink_tokens, const at::Tensor& query_segments = {},
                          const at::Tensor& key_segments = {});

/// softmax(q·kᵀ·scale | mask) · v, with the softmax in fp32 (as transformers' eager path).
/// q [B, H, T, d_k], k [B, H_kv, S, d_k], v [B, H_kv, S, d_v], mask [B, 1, T, S]
/// -> [B, T, H·d_v]. Query head h reads key/value head h / G. Fully masked rows (padding
/// queries) get a uniform distribution instead of NaN; their outputs are never used.
at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask, double scale);

/// attend() with the mask given by positions (attention_mask's rule, no segments) and the
/// masked softmax fused into one pass over the scores: the decode path in inference (fp32,
/// CPU, no gradient wanted, G·T ≤ kSmallGemmMaxRows query rows per key/value head, the
/// KV cache's layout). Undefined when it does not apply (the caller then takes attend()).
at::Tensor attend_by_positions(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& query_positions, const at::Tensor& key_positions, int64_t window,
                               int64_t n_sink_tokens, double scale);

struct AttentionOptions {
  int64_t hidden_size = 0;     ///< D
  int64_t n_heads = 0;         ///< H
  int64_t n_kv_heads = 0;      ///< H_kv, divides H
  int64_t head_dim = 0;        ///< d
  bool qkv_bias = false;       ///< biases on q_proj, k_proj, v_proj
  bool o_bias = false;         ///< bias on o_proj
  bool qk_norm = false;        ///< q_norm / k_norm RMSNorm over d, before RoPE (Qwen3)
  double rms_norm_eps = 1e-6;  ///< for q_norm / k_norm
  RopeOptions rope;            ///< rope.dim = head_dim
  int64_t sliding_window = 0;  ///< W; 0 = full causal attention
  int64_t n_sink_tokens = 0;   ///< first positions that stay visible under the window
};

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const AttentionOptions& options, const at::TensorOptions& param_options);
  /// x [B, T, D] -> [B, T, D].
  at::Tensor forward(const at::Tensor& x, const AttentionInputs& in);
  const AttentionOptions& options() const { return options_; }

  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};  // [H·d, D] [H_kv·d, D] x2, [D, H·d]
  RmsNorm q_norm{nullptr}, k_norm{nullptr};                                   // [d] (qk_norm only)

 private:
  AttentionOptions options_;
  RotaryEmbedding rope_;
};
TORCH_MODULE(Attention);

}  // namespace rlft::policy
