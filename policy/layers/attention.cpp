#include "policy/layers/attention.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace rlft::policy {

at::Tensor attention_mask(const at::Tensor& query_positions, const at::Tensor& key_positions, int64_t window,
                          int64_t n_sink_tokens, const at::Tensor& query_segments, const at::Tensor& key_segments) {
  const auto q = query_positions.unsqueeze(2);  // [B, T, 1]
  const auto k = key_positions.unsqueeze(1);    // [B, 1, S]
  auto mask = (k >= 0).logical_and(k <= q);
  if (window > 0) mask = mask.logical_and((q - k < window).logical_or(k < n_sink_tokens));
  if (query_segments.defined() && key_segments.defined())
    mask = mask.logical_and(query_segments.unsqueeze(2) == key_segments.unsqueeze(1));
  return mask.unsqueeze(1);  // [B, 1, T, S]
}

at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                  double scale) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), d_k = q.size(3);
  const int64_t H_kv = k.size(1), S = k.size(2), d_v = v.size(3);
  RLFT_CHECK(H % H_kv == 0, "attention: {} query heads do not group over {} key/value heads", H, H_kv);
  const int64_t G = H / H_kv;
  // The G query heads of one key/value head become G·T rows of one GEMM: no copy of k or v.
  const auto qg = q.reshape({B, H_kv, G * T, d_k});
  auto scores = at::matmul(qg, k.transpose(-1, -2)).mul_(scale);  // [B, H_kv, G·T, S]
  scores = scores.view({B, H_kv, G, T, S});
  // The most negative finite value of the dtype: exp() of it is 0, and a row masked
  // everywhere stays finite.
  const double lowest = scores.scalar_type() == at::kHalf       ? -65504.0
                        : scores.scalar_type() == at::kBFloat16 ? -3.38e38
                                                                : -std::numeric_limits<float>::max();
  scores = scores.masked_fill(mask.unsqueeze(1).logical_not(), lowest);
  const auto probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  const auto out = at::matmul(probs.view({B, H_kv, G * T, S}), v);  // [B, H_kv, G·T, d_v]
  return out.view({B, H, T, d_v}).transpose(1, 2).reshape({B, T, H * d_v});
}

AttentionImpl::AttentionImpl(const AttentionOptions& o, const at::TensorOptions& p) : options_(o) {
  RLFT_CHECK(o.n_heads > 0 && o.n_kv_heads > 0 && o.n_heads % o.n_kv_heads == 0,
             "attention: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", o.n_heads,
             o.n_kv_heads);
  q_proj = register_module("q_proj", Linear(LinearOptions{o.hidden_size, o.n_heads * o.head_dim, o.qkv_bias}, p));
  k_proj = register_module("k_proj", Linear(LinearOptions{o.hidden_size, o.n_kv_heads * o.head_dim, o.qkv_bias}, p));
  v_proj = register_module("v_proj", Linear(LinearOptions{o.hidden_size, o.n_kv_heads * o.head_dim, o.qkv_bias}, p));
  o_proj = register_module("o_proj", Linear(LinearOptions{o.n_heads * o.head_dim, o.hidden_size, o.o_bias}, p));
  if (o.qk_norm) {
    q_norm = register_module("q_norm", RmsNorm(o.head_dim, o.rms_norm_eps, p));
    k_norm = register_module("k_norm", RmsNorm(o.head_dim, o.rms_norm_eps, p));
  }
  rope_ = RotaryEmbedding(o.rope);
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const AttentionInputs& in) {
  const auto& o = options_;
  const int64_t B = x.size(0), T = x.size(1);
  auto q = q_proj(x).view({B, T, o.n_heads, o.head_dim});     // [B, T, H, d]
  auto k = k_proj(x).view({B, T, o.n_kv_heads, o.head_dim});  // [B, T, H_kv, d]
  auto v = v_proj(x).view({B, T, o.n_kv_heads, o.head_dim});
  if (o.qk_norm) {
    q = q_norm(q);
    k = k_norm(k);
  }
  q = q.transpose(1, 2);  // [B, H, T, d]
  k = k.transpose(1, 2);  // [B, H_kv, T, d]
  v = v.transpose(1, 2);
  const auto [cos, sin] = rope_.cos_sin(in.positions, x.scalar_type());
  q = apply_rope(q, cos, sin, o.rope.interleaved);
  k = apply_rope(k, cos, sin, o.rope.interleaved);

  at::Tensor key_positions = in.positions;
  if (in.cache) {
    in.cache->evict(o.sliding_window, o.n_sink_tokens, in.next_positions);
    const auto all = in.cache->append({k, v}, {2, 2}, in.positions);
    k = all[0];  // [B, H_kv, S, d]
    v = all[1];
    key_positions = in.cache->positions();
  }
  const auto mask = attention_mask(in.positions, key_positions, o.sliding_window, o.n_sink_tokens,
                                   in.cache ? at::Tensor() : in.segments, in.cache ? at::Tensor() : in.segments);
  const auto out = attend(q, k, v, mask, 1.0 / std::sqrt(static_cast<double>(o.head_dim)));  // [B, T, H·d]
  return o_proj(out);
}

}  // namespace rlft::policy
