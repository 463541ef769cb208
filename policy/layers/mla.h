#pragma once
// Multi-head Latent Attention (DeepSeek-V2/V3, arXiv 2405.04434 §2.1, 2412.19437 §2.1.1),
// as transformers' DeepseekV3Attention: optional query LoRA (q_a_proj → q_a_layernorm →
// q_b_proj, or a plain q_proj when q_lora_rank = 0), a compressed key/value latent
// (kv_a_proj_with_mqa → [c^KV | k^R], kv_a_layernorm on c^KV, kv_b_proj → [k^C | v] per
// head), a decoupled RoPE key k^R shared by all heads, softmax scale (d_nope + d_R)^-½
// times mscale(factor, mscale_all_dim)² under YaRN.
//
// The cache holds only c^KV (normalised) and the rotated k^R, one row [c^KV | k^R] of
// d_c + d_R numbers per token.
// With a cache and few new tokens the weights are absorbed (W_UK into the query, W_UV
// after the attention; [V2] §2.1.3) so cached latents are never expanded; otherwise the
// latents are expanded into per-head keys and values (the training path).
//
// Legend: B rows, T new tokens, S keys, D model width, H heads, d_n = qk_nope_head_dim,
// d_R = qk_rope_head_dim, d_v = v_head_dim, d_c = kv_lora_rank, d_q = q_lora_rank.

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "policy/layers/attention.h"

namespace rlft::policy {

struct MlaOptions {
  int64_t hidden_size = 0;       ///< D
  int64_t n_heads = 0;           ///< H
  int64_t q_lora_rank = 0;       ///< d_q; 0 = no query compression
  int64_t kv_lora_rank = 0;      ///< d_c
  int64_t qk_nope_head_dim = 0;  ///< d_n
  int64_t qk_rope_head_dim = 0;  ///< d_R
  int64_t v_head_dim = 0;        ///< d_v
  bool attention_bias = false;   ///< biases on q_a_proj (or q_proj), kv_a_proj_with_mqa, o_proj
  double rms_norm_eps = 1e-6;    ///< q_a_layernorm, kv_a_layernorm
  RopeOptions rope;              ///< rope.dim = d_R, interleaved for DeepSeek checkpoints
  double softmax_scale = 0.0;    ///< 0 = (d_n + d_R)^-½ · mscale² (from rope.scaling)
  int64_t sliding_window = 0;    ///< W; 0 = full causal attention
  int64_t n_sink_tokens = 0;
  /// With a cache, calls of at most this many new tokens use the absorbed form.
  int64_t absorb_max_tokens = 16;
};

class MlaImpl : public torch::nn::Module {
 public:
  MlaImpl(const MlaOptions& options, const at::TensorOptions& param_options);
  /// x [B, T, D] -> [B, T, D].
  at::Tensor forward(const at::Tensor& x, const AttentionInputs& in);
  const MlaOptions& options() const { return options_; }
  double softmax_scale() const { return scale_; }

  Linear q_proj{nullptr};              // [H·(d_n+d_R), D]   (q_lora_rank = 0)
  Linear q_a_proj{nullptr};            // [d_q, D]
  RmsNorm q_a_layernorm{nullptr};      // [d_q]
  Linear q_b_proj{nullptr};            // [H·(d_n+d_R), d_q]
  Linear kv_a_proj_with_mqa{nullptr};  // [d_c + d_R, D]
  RmsNorm kv_a_layernorm{nullptr};     // [d_c]
  Linear kv_b_proj{nullptr};           // [H·(d_n+d_v), d_c]
  Linear o_proj{nullptr};              // [D, H·d_v]

 private:
  at::Tensor expanded(const at::Tensor& q_nope, const at::Tensor& q_rot, const at::Tensor& latent,
                      const at::Tensor& k_rot, const at::Tensor& mask);
  at::Tensor absorbed(const at::Tensor& q_nope, const at::Tensor& q_rot, const at::Tensor& latent,
                      const at::Tensor& k_rot, const at::Tensor& mask);
  at::Tensor absorbed_few_rows(const at::Tensor& q_nope, const at::Tensor& q_rot, const at::Tensor& kv,
                               const at::Tensor& query_positions, const at::Tensor& key_positions);
  MlaOptions options_;
  RotaryEmbedding rope_;
  double scale_ = 1.0;
};
TORCH_MODULE(Mla);

}  // namespace rlft::policy
