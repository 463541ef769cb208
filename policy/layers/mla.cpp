#include "policy/layers/mla.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "policy/kernels/small_gemm.h"

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
  // The query's first projection and the key/value compression read x in one pass.
  at::Tensor q_flat, compressed;
  if (o.q_lora_rank > 0) {
    const auto a = apply_linears(x, {q_a_proj, kv_a_proj_with_mqa});
    q_flat = q_b_proj(q_a_layernorm(a[0]));
    compressed = a[1];
  } else {
    const auto a = apply_linears(x, {q_proj, kv_a_proj_with_mqa});
    q_flat = a[0];
    compressed = a[1];  // [B, T, d_c + d_R]
  }
  const auto q = q_flat.view({B, T, o.n_heads, d_qk});
  const auto q_nope = q.narrow(-1, 0, o.qk_nope_head_dim);                                       // [B, T, H, d_n]
  const auto q_rot_in = q.narrow(-1, o.qk_nope_head_dim, o.qk_rope_head_dim);                    // [B, T, H, d_R]
  auto latent = kv_a_layernorm(compressed.narrow(-1, 0, o.kv_lora_rank));                        // [B, T, d_c]
  const auto k_rot_in = compressed.narrow(-1, o.kv_lora_rank, o.qk_rope_head_dim).unsqueeze(2);  // [B, T, 1, d_R]

  // Inference: rotated in one pass each (undefined when it does not apply).
  auto q_rot = rope_.rotate_inference(q_rot_in, in.positions);  // [B, H, T, d_R]
  auto k_rot = rope_.rotate_inference(k_rot_in, in.positions);  // [B, 1, T, d_R]
  if (!q_rot.defined() || !k_rot.defined()) {
    const auto [cos, sin] = rope_.cos_sin(in.positions, x.scalar_type());
    q_rot = apply_rope(q_rot_in.transpose(1, 2), cos, sin, o.rope.interleaved);
    k_rot = apply_rope(k_rot_in.transpose(1, 2), cos, sin, o.rope.interleaved);
  }
  k_rot = k_rot.squeeze(1);  // [B, T, d_R]

  at::Tensor key_positions = in.positions;
  bool absorb = false;
  if (in.cache) {
    // One cached row per token: [c^KV | k^R].
    in.cache->evict(o.sliding_window, o.n_sink_tokens, in.next_positions);
    const auto all = in.cache->append({at::cat({latent, k_rot}, -1)}, {1}, in.positions)[0];  // [B, S, d_c + d_R]
    latent = all.narrow(-1, 0, o.kv_lora_rank);
    k_rot = all.narrow(-1, o.kv_lora_rank, o.qk_rope_head_dim);
    key_positions = in.cache->positions();
    absorb = T <= o.absorb_max_tokens;
    if (absorb) {
      const auto out = absorbed_few_rows(q_nope, q_rot, all, in.positions, key_positions);
      if (out.defined()) return o_proj(out);
    }
  }
  const auto mask = attention_mask(in.positions, key_positions, o.sliding_window, o.n_sink_tokens,
                                   in.cache ? at::Tensor() : in.segments, in.cache ? at::Tensor() : in.segments);
  const auto q_nope_heads = q_nope.transpose(1, 2);  // [B, H, T, d_n]
  const auto out =
      absorb ? absorbed(q_nope_heads, q_rot, latent, k_rot, mask) : expanded(q_nope_heads, q_rot, latent, k_rot, mask);
  return o_proj(out);  // out [B, T, H·d_v]
}

// The absorbed form in inference (fp32, CPU, H·T query rows within the few-rows kernel's
// reach): W_UK per head into the query [q^C W_UK | q^R], the heads against the one shared
// cached row [c | k^R] as a single key/value head through attend_by_positions (the
// latent as the value, a strided view), then W_UV per head. No mask tensor, no batched
// matmul looping over rows and heads. Undefined when it does not apply.
at::Tensor MlaImpl::absorbed_few_rows(const at::Tensor& q_nope, const at::Tensor& q_rot, const at::Tensor& kv,
                                      const at::Tensor& query_positions, const at::Tensor& key_positions) {
  const auto& o = options_;
  const int64_t B = q_nope.size(0), T = q_nope.size(1), H = o.n_heads;
  const int64_t d_n = o.qk_nope_head_dim, d_R = o.qk_rope_head_dim, d_v = o.v_head_dim, d_c = o.kv_lora_rank;
  const auto w = kv_b_proj->effective_weight();  // [H·(d_n + d_v), d_c]
  if (H * T > kSmallGemmMaxRows || !small_gemm_takes_weight(w) || !small_gemm_takes_operand(q_nope) ||
      !small_gemm_takes_operand(q_rot) || !small_gemm_takes_operand(kv) || q_nope.stride(3) != 1 ||
      q_nope.stride(0) != T * q_nope.stride(1) || kv.stride(2) != 1 || kv.stride(1) != d_c + d_R)
    return {};
  const float* weight = w.data_ptr<float>();
  auto q = at::empty({B, T, H, d_c + d_R}, q_nope.options());  // [q^C W_UK | q^R]
  std::vector<SmallGemmJob> jobs;
  for (int64_t h = 0; h < H; ++h) {
    SmallGemmJob job{q_nope.data_ptr<float>() + h * q_nope.stride(2),
                     q_nope.stride(1),
                     B * T,
                     weight + h * (d_n + d_v) * d_c,  // W_UK of head h [d_n, d_c]
                     d_n,
                     d_c,
                     q.data_ptr<float>() + h * (d_c + d_R),
                     H * (d_c + d_R)};
    job.w_is_kn = true;
    job.ldw = d_c;
    jobs.push_back(job);
  }
  run_small_gemm(jobs);
  q.narrow(-1, d_c, d_R).copy_(q_rot.transpose(1, 2));
  const auto key = kv.unsqueeze(1);  // [B, 1, S, d_c + d_R]
  const auto mixed = attend_by_positions(q.transpose(1, 2), key, key.narrow(-1, 0, d_c), query_positions, key_positions,
                                         o.sliding_window, o.n_sink_tokens, scale_);  // [B, T, H·d_c]
  if (!mixed.defined()) return {};
  auto out = at::empty({B, T, H * d_v}, q.options());
  jobs.clear();
  for (int64_t h = 0; h < H; ++h)
    jobs.push_back({mixed.data_ptr<float>() + h * d_c, H * d_c, B * T,
                    weight + (h * (d_n + d_v) + d_n) * d_c,  // W_UV of head h [d_v, d_c]
                    d_c, d_v, out.data_ptr<float>() + h * d_v, H * d_v});
  run_small_gemm(jobs);
  return out;
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
  const auto w = kv_b_proj->effective_weight().view({H, o.qk_nope_head_dim + o.v_head_dim, o.kv_lora_rank});
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
