#include "policy/layers/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "policy/kernels/small_gemm.h"
#include "policy/kernels/spin_pool.h"

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

namespace {

// scores [B, H_kv, G, T, S] → masked softmax probabilities in q's dtype.
at::Tensor attention_probs(at::Tensor scores, const at::Tensor& mask, at::ScalarType dtype) {
  // The most negative finite value of the dtype: exp() of it is 0, and a row masked
  // everywhere stays finite.
  const double lowest = scores.scalar_type() == at::kHalf       ? -65504.0
                        : scores.scalar_type() == at::kBFloat16 ? -3.38e38
                                                                : -std::numeric_limits<float>::max();
  scores = scores.masked_fill(mask.unsqueeze(1).logical_not(), lowest);
  return at::softmax(scores, -1, at::kFloat).to(dtype);
}

// Whether k [B, H_kv, S, d] can be read row by row: unit last stride, rows d apart (the KV
// cache's layout). Values only need the unit last stride (their rows may be strided, as
// MLA's latent inside the cached [c | k^R] rows).
bool rows_packed(const at::Tensor& t) {
  return t.stride(3) == 1 && t.stride(2) == t.size(3);
}

// Decode (G·T query rows per key/value head, at most kSmallGemmMaxRows) in inference: the
// B·H_kv small products of each matmul through the few-rows kernel in one threaded pass.
// ATen's batched matmul would loop over them one BLAS call at a time.
bool few_rows_apply(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t G = q.size(1) / k.size(1), T = q.size(2);
  return G * T <= kSmallGemmMaxRows && small_gemm_takes_operand(q) && small_gemm_takes_operand(k) &&
         small_gemm_takes_operand(v) && rows_packed(k) && v.stride(3) == 1;
}

// q [B, H, T, d_k] · kᵀ → unscaled scores [B, H_kv, G·T, S].
at::Tensor few_rows_scores(const at::Tensor& q, const at::Tensor& k) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), d_k = q.size(3);
  const int64_t H_kv = k.size(1), S = k.size(2), G = H / H_kv;
  const auto qg = q.reshape({B, H_kv, G * T, d_k}).contiguous();  // [B, H_kv, G·T, d_k]
  auto scores = at::empty({B, H_kv, G * T, S}, q.options());      // [B, H_kv, G·T, S]
  std::vector<SmallGemmJob> jobs;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H_kv; ++h) {
      const int64_t bh = b * H_kv + h;
      jobs.push_back({qg.data_ptr<float>() + bh * G * T * d_k, d_k, G * T,
                      k.data_ptr<float>() + b * k.stride(0) + h * k.stride(1), d_k, S,
                      scores.data_ptr<float>() + bh * G * T * S, S});
    }
  run_small_gemm(jobs);
  return scores;
}

// probs [B, H_kv, G·T, S] contiguous · v → [B, H_kv, G·T, d_v].
at::Tensor few_rows_values(const at::Tensor& probs, const at::Tensor& v) {
  const int64_t B = probs.size(0), H_kv = probs.size(1), GT = probs.size(2), S = probs.size(3), d_v = v.size(3);
  auto out = at::empty({B, H_kv, GT, d_v}, v.options());
  std::vector<SmallGemmJob> jobs;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H_kv; ++h) {
      const int64_t bh = b * H_kv + h;
      SmallGemmJob job{probs.data_ptr<float>() + bh * GT * S,
                       S,
                       GT,
                       v.data_ptr<float>() + b * v.stride(0) + h * v.stride(1),
                       S,
                       d_v,
                       out.data_ptr<float>() + bh * GT * d_v,
                       d_v};
      job.w_is_kn = true;
      job.ldw = v.stride(2);
      jobs.push_back(job);
    }
  run_small_gemm(jobs);
  return out;
}

// attend() through the few-rows kernel, mask given; undefined when it does not apply.
at::Tensor attend_few_rows(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                           double scale) {
  if (!few_rows_apply(q, k, v)) return {};
  const int64_t B = q.size(0), T = q.size(2), H_kv = k.size(1), S = k.size(2), G = q.size(1) / H_kv;
  auto scores = few_rows_scores(q, k);
  const auto probs = attention_probs(scores.mul_(scale).view({B, H_kv, G, T, S}), mask, q.scalar_type())
                         .contiguous();  // [B, H_kv, G, T, S]
  return few_rows_values(probs.view({B, H_kv, G * T, S}), v);
}

}  // namespace

at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask, double scale) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), d_k = q.size(3);
  const int64_t H_kv = k.size(1), S = k.size(2), d_v = v.size(3);
  RLFT_CHECK(H % H_kv == 0, "attention: {} query heads do not group over {} key/value heads", H, H_kv);
  const int64_t G = H / H_kv;
  auto out = attend_few_rows(q, k, v, mask, scale);  // [B, H_kv, G·T, d_v], or undefined
  if (!out.defined()) {
    // The G query heads of one key/value head become G·T rows of one GEMM: no copy of k or v.
    const auto qg = q.reshape({B, H_kv, G * T, d_k});
    const auto scores = at::matmul(qg, k.transpose(-1, -2)).mul_(scale);  // [B, H_kv, G·T, S]
    const auto probs = attention_probs(scores.view({B, H_kv, G, T, S}), mask, q.scalar_type());
    out = at::matmul(probs.view({B, H_kv, G * T, S}), v);  // [B, H_kv, G·T, d_v]
  }
  return out.view({B, H, T, d_v}).transpose(1, 2).reshape({B, T, H * d_v});
}

at::Tensor attend_by_positions(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& query_positions, const at::Tensor& key_positions, int64_t window,
                               int64_t n_sink_tokens, double scale) {
  if (!few_rows_apply(q, k, v) || !query_positions.device().is_cpu() || !key_positions.device().is_cpu()) return {};
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), d_v = v.size(3);
  const int64_t H_kv = k.size(1), S = k.size(2), G = H / H_kv;
  auto scores = few_rows_scores(q, k);  // [B, H_kv, G·T, S], rows (g, t)
  const auto qp = query_positions.to(at::kLong).contiguous(), kp = key_positions.to(at::kLong).contiguous();
  const int64_t* qpos = qp.data_ptr<int64_t>();
  const int64_t* kpos = kp.data_ptr<int64_t>();
  float* sc = scores.data_ptr<float>();
  const float fscale = static_cast<float>(scale);
  // The masked softmax of attention_probs, row by row: masked keys get probability 0, and a
  // row with no visible key (a padding query) the uniform distribution, as there.
  const int64_t rows = B * H_kv * G * T, rows_per_task = std::max<int64_t>(1, 16384 / std::max<int64_t>(S, 1));
  spin_pool_run((rows + rows_per_task - 1) / rows_per_task, [&](int64_t task) {
    const int64_t end = std::min(rows, (task + 1) * rows_per_task);
    for (int64_t r = task * rows_per_task; r < end; ++r) {
      const int64_t b = r / (H_kv * G * T), t = r % T;
      const int64_t q_at = qpos[b * T + t];
      const int64_t* keys = kpos + b * S;
      float* row = sc + r * S;
      auto visible = [&](int64_t s) {
        const int64_t k_at = keys[s];
        return k_at >= 0 && k_at <= q_at && (window <= 0 || q_at - k_at < window || k_at < n_sink_tokens);
      };
      float top = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s < S; ++s)
        if (visible(s)) top = std::max(top, row[s] * fscale);
      if (top == -std::numeric_limits<float>::infinity()) {
        for (int64_t s = 0; s < S; ++s) row[s] = 1.0f / static_cast<float>(S);
        continue;
      }
      float sum = 0.0f;
      for (int64_t s = 0; s < S; ++s) {
        row[s] = visible(s) ? std::exp(row[s] * fscale - top) : 0.0f;
        sum += row[s];
      }
      const float inv = 1.0f / sum;
      for (int64_t s = 0; s < S; ++s) row[s] *= inv;
    }
  });
  const auto out = few_rows_values(scores, v);  // [B, H_kv, G·T, d_v]
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
  const auto qkv = apply_linears(x, {q_proj, k_proj, v_proj});
  auto q = qkv[0].view({B, T, o.n_heads, o.head_dim});     // [B, T, H, d]
  auto k = qkv[1].view({B, T, o.n_kv_heads, o.head_dim});  // [B, T, H_kv, d]
  auto v = qkv[2].view({B, T, o.n_kv_heads, o.head_dim});
  if (o.qk_norm) {
    q = q_norm(q);
    k = k_norm(k);
  }
  v = v.transpose(1, 2);  // [B, H_kv, T, d]
  // Inference: each rotated in one pass, no cos/sin tensors (undefined when it does not apply).
  auto q_rotated = rope_.rotate_inference(q, in.positions), k_rotated = rope_.rotate_inference(k, in.positions);
  if (q_rotated.defined() && k_rotated.defined()) {
    q = q_rotated;  // [B, H, T, d]
    k = k_rotated;  // [B, H_kv, T, d]
  } else {
    const auto [cos, sin] = rope_.cos_sin(in.positions, x.scalar_type());
    q = apply_rope(q.transpose(1, 2), cos, sin, o.rope.interleaved);
    k = apply_rope(k.transpose(1, 2), cos, sin, o.rope.interleaved);
  }

  at::Tensor key_positions = in.positions;
  if (in.cache) {
    in.cache->evict(o.sliding_window, o.n_sink_tokens, in.next_positions);
    const auto all = in.cache->append({k, v}, {2, 2}, in.positions);
    k = all[0];  // [B, H_kv, S, d]
    v = all[1];
    key_positions = in.cache->positions();
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(o.head_dim));
  const at::Tensor segments = in.cache ? at::Tensor() : in.segments;
  at::Tensor out;  // [B, T, H·d]
  if (!segments.defined())
    out = attend_by_positions(q, k, v, in.positions, key_positions, o.sliding_window, o.n_sink_tokens, scale);
  if (!out.defined()) {
    const auto mask =
        attention_mask(in.positions, key_positions, o.sliding_window, o.n_sink_tokens, segments, segments);
    out = attend(q, k, v, mask, scale);
  }
  return o_proj(out);
}

}  // namespace rlft::policy
