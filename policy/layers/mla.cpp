#include "policy/layers/mla.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace rlft::policy {

MlaImpl::MlaImpl(const MlaOptions& o, const at::TensorOptions& p) : options_(o) {
  const int64_t d_qk = o.qk_nope_head_dim + o.qk_rope_head_dim;
  if (o.q_lora_rank > 0) {
    q_a_proj = register_module("q_a_proj", Linear(LinearOptions{o.hidden_size, o.q_lora_rank, o.attention_bias}, p));
    q_a_layernorm = register_module("q_a_layernorm", RmsNorm(o.q_lora_rank, o.rms_norm_eps, p));
    q_b_proj = register_module("q_b_proj", Linear(LinearOptions{o.q_lora_rank, o.n_heads * d_qk, false}, p));
  } else {
    q_proj = register_module("q_proj", Linear(LinearOptions{o.hidden_size, o.n_heads * d_qk, false}, p));
  }
  kv_a_proj_with_mqa =
      register_module("kv_a_proj_with_mqa",
                      Linear(LinearOptions{o.hidden_size, o.kv_lora_rank + o.qk_rope_head_dim, o.attention_bias}, p));
  kv_a_layernorm = register_module("kv_a_layernorm", RmsNorm(o.kv_lora_rank, o.rms_norm_eps, p));
  kv_b_proj = register_module(
      "kv_b_proj", Linear(LinearOptions{o.kv_lora_rank, o.n_heads * (o.qk_nope_head_dim + o.v_head_dim), false}, p));
  o_proj =
      register_module("o_proj", Linear(LinearOptions{o.n_heads * o.v_head_dim, o.hidden_size, o.attention_bias}, p));
  rope_ = RotaryEmbedding(o.rope);
  scale_ = o.softmax_scale;
  if (scale_ == 0.0) {
    scale_ = 1.0 / std::sqrt(static_cast<double>(d_qk));
    const RopeScaling& s = o.rope.scaling;
    if (s.type != "default" && s.mscale_all_dim != 0.0) {
      const double m = yarn_mscale(s.factor, s.mscale_all_dim);
      scale_ *= m * m;
    }
  }
}

at::Tensor MlaImpl::forward(const at::Tensor& x, const AttentionInputs& in) {
  const auto& o = options_;
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t d_qk = o.qk_nope_head_dim + o.qk_rope_head_dim;
  const auto q_flat = o.q_lora_rank > 0 ? q_b_proj(q_a_layernorm(q_a_proj(x))) : q_proj(x);
  const auto q = q_flat.view({B, T, o.n_heads, d_qk}).transpose(1, 2);  // [B, H, T, d_n + d_R]
  auto q_nope = q.narrow(-1, 0, o.qk_nope_head_dim);                    // [B, H, T, d_n]
  auto q_rot = q.narrow(-1, o.qk_nope_head_dim, o.qk_rope_head_dim);    // [B, H, T, d_R]

  const auto compressed = kv_a_proj_with_mqa(x);                                        // [B, T, d_c + d_R]
  auto latent = kv_a_layernorm(compressed.narrow(-1, 0, o.kv_lora_rank));               // [B, T, d_c]
  auto k_rot = compressed.narrow(-1, o.kv_lora_rank, o.qk_rope_head_dim).unsqueeze(1);  // [B, 1, T, d_R]

  const auto [cos, sin] = rope_.cos_sin(in.positions, x.scalar_type());
  q_rot = apply_rope(q_rot, cos, sin, o.rope.interleaved);
  k_rot = apply_rope(k_rot, cos, sin, o.rope.interleaved).squeeze(1);  // [B, T, d_R]

  at::Tensor key_positions = in.positions;
  bool absorb = false;
  if (in.cache) {
    in.cache->evict(o.sliding_window, o.n_sink_tokens, in.next_positions);
    const auto all = in.cache->append({latent, k_rot}, {1, 1}, in.positions);
    latent = all[0];  // [B, S, d_c]
    k_rot = all[1];   // [B, S, d_R]
    key_positions = in.cache->positions();
    absorb = T <= o.absorb_max_tokens;
  }
  const auto mask = attention_mask(in.positions, key_positions, o.sliding_window, o.n_sink_tokens,
                                   in.cache ? at::Tensor() : in.segments, in.cache ? at::Tensor() : in.segments);
  const auto out = absorb ? absorbed(q_nope, q_rot, latent, k_rot, mask) : expanded(q_nope, q_rot, latent, k_rot, mask);
  return o_proj(out);  // out [B, T, H·d_v]
}

// Per-head keys [k^C | k^R] and values from the latents, then ordinary attention.
at::Tensor MlaImpl::expanded(const at::Tensor& q_nope, const at::Tensor& q_rot, const at::Tensor& latent,
                             const at::Tensor& k_rot, const at::Tensor& mask) {
  const auto& o = options_;
  const int64_t B = latent.size(0), S = latent.size(1);
  const auto kv = kv_b_proj(latent).view({B, S, o.n_heads, o.qk_nope_head_dim + o.v_head_dim}).transpose(1, 2);
  const auto k_nope = kv.narrow(-1, 0, o.qk_nope_head_dim);        // [B, H, S, d_n]
  const auto v = kv.narrow(-1, o.qk_nope_head_dim, o.v_head_dim);  // [B, H, S, d_v]
  const auto k = at::cat({k_nope, k_rot.unsqueeze(1).expand({B, o.n_heads, S, o.qk_rope_head_dim})}, -1);
  const auto q = at::cat({q_nope, q_rot}, -1);  // [B, H, T, d_n + d_R]
  return attend(q, k, v, mask, scale_);
}

// Absorbed form ([V2] §2.1.3): scores = (q^C W_UK)·c + q^R·k^R, out = (p·c) W_UVᵀ.
at::Tensor MlaImpl::absorbed(const at::Tensor& q_nope, const at::Tensor& q_rot, const at::Tensor& latent,
                             const at::Tensor& k_rot, const at::Tensor& mask) {
  const auto& o = options_;
  const int64_t B = q_nope.size(0), H = o.n_heads, T = q_nope.size(2), S = latent.size(1);
  const auto w = kv_b_proj->weight.view({H, o.qk_nope_head_dim + o.v_head_dim, o.kv_lora_rank});
  const auto w_uk = w.narrow(1, 0, o.qk_nope_head_dim);             // [H, d_n, d_c]
  const auto w_uv = w.narrow(1, o.qk_nope_head_dim, o.v_head_dim);  // [H, d_v, d_c]
  const auto q_latent = at::matmul(q_nope, w_uk);                   // [B, H, T, d_c]
  // All heads' rows against one shared latent: [B, H·T, d_c] x [B, d_c, S].
  auto scores = at::matmul(q_latent.reshape({B, H * T, o.kv_lora_rank}), latent.transpose(1, 2));
  scores = scores + at::matmul(q_rot.reshape({B, H * T, o.qk_rope_head_dim}), k_rot.transpose(1, 2));
  scores = (scores * scale_).view({B, H, T, S});
  const double lowest = scores.scalar_type() == at::kHalf       ? -65504.0
                        : scores.scalar_type() == at::kBFloat16 ? -3.38e38
                                                                : -std::numeric_limits<float>::max();
  scores = scores.masked_fill(mask.logical_not(), lowest);
  const auto probs = at::softmax(scores, -1, at::kFloat).to(q_nope.scalar_type());
  const auto out_latent = at::matmul(probs.view({B, H * T, S}), latent).view({B, H, T, o.kv_lora_rank});
  const auto out = at::matmul(out_latent, w_uv.transpose(1, 2));  // [B, H, T, d_v]
  return out.transpose(1, 2).reshape({B, T, H * o.v_head_dim});
}

}  // namespace rlft::policy
