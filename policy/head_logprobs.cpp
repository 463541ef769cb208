#include "policy/head_logprobs.h"

#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>

#include <fmt/ranges.h>

#include "core/error.h"

namespace rlft::policy {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::ScalarType autocast_or(const at::Tensor& hidden, at::ScalarType fallback) {
  if (hidden.is_cuda() && at::autocast::is_enabled()) return at::autocast::get_autocast_gpu_dtype();
  if (hidden.is_cpu() && at::autocast::is_cpu_enabled()) return at::autocast::get_autocast_cpu_dtype();
  return fallback;
}

struct Chunk {
  int64_t begin = 0, size = 0;
};

std::vector<Chunk> chunks_of(int64_t n, int64_t chunk) {
  std::vector<Chunk> out;
  for (int64_t b = 0; b < n; b += chunk) out.push_back({b, std::min(chunk, n - b)});
  return out;
}

// The dtype of the softmax and the results: float32, or float64 for a float64 matmul.
at::ScalarType softmax_dtype(at::ScalarType matmul) {
  return at::promote_types(matmul, at::kFloat);
}

// Two [c, V] buffers reused by every chunk of a call. Each fresh [c, V] tensor costs more in
// page faults than the element-wise pass over it (a 67 MB exp: 366 ms allocated, 13 ms into a
// reused buffer, on the 2-core machines), so the chunks write into these with out= and
// in-place ops.
struct Workspace {
  at::Tensor z, lp;  // [c, V] in the softmax dtype
  Workspace(int64_t rows, int64_t V, const at::TensorOptions& o)
      : z(at::empty({rows, V}, o)), lp(at::empty({rows, V}, o)) {}
};

// One chunk's tempered log-softmax, into ws.lp's first n rows (returned); ws.z holds the
// logits afterwards. `wm` is the weight in the matmul dtype.
at::Tensor chunk_log_softmax(const at::Tensor& hidden_chunk, const at::Tensor& wm, double temperature, Workspace& ws) {
  const int64_t n = hidden_chunk.size(0);
  auto z = ws.z.narrow(0, 0, n);
  auto lp = ws.lp.narrow(0, 0, n);
  if (wm.scalar_type() == z.scalar_type())
    at::mm_out(z, hidden_chunk.to(wm.scalar_type()), wm.t());
  else
    z.copy_(hidden_chunk.to(wm.scalar_type()).matmul(wm.t()));  // bf16/fp16 matmul, fp32 softmax
  if (temperature != 1.0) z.div_(temperature);
  at::_log_softmax_out(lp, z, 1, false);
  return lp;
}

// Σ_v a[r, v]·b[r, v] per row without a [c, V] product: [c, 1].
at::Tensor row_dot(const at::Tensor& a, const at::Tensor& b) {
  return at::bmm(a.unsqueeze(1), b.unsqueeze(2)).view({a.size(0), 1});
}

// The forward without autograd: [N] log-probs (and entropies).
HeadLogprobs compute(const at::Tensor& hidden, const at::Tensor& wm, const at::Tensor& targets, double temperature,
                     bool entropy, int64_t chunk) {
  const int64_t N = hidden.size(0), V = wm.size(0);
  HeadLogprobs out;
  const auto o = hidden.options().dtype(softmax_dtype(wm.scalar_type()));
  out.logp = at::empty({N}, o);
  if (entropy) out.entropy = at::empty({N}, o);
  Workspace ws(std::min(chunk, N), V, o);
  for (const auto& c : chunks_of(N, chunk)) {
    const auto lp = chunk_log_softmax(hidden.narrow(0, c.begin, c.size), wm, temperature, ws);  // [c, V]
    out.logp.narrow(0, c.begin, c.size).copy_(lp.gather(1, targets.narrow(0, c.begin, c.size).unsqueeze(1)).squeeze(1));
    if (entropy) {
      auto p = ws.z.narrow(0, 0, c.size);  // the logits are no longer needed
      at::exp_out(p, lp);
      out.entropy.narrow(0, c.begin, c.size).copy_(-row_dot(p, lp).squeeze(1));
    }
  }
  return out;
}

// Autocast off inside: every dtype here is chosen explicitly, and backward runs wherever the
// engine runs it, with or without the caller's autocast.
struct NoAutocast {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autocast_dispatch_keyset};
};

class FusedHeadLogprobs : public torch::autograd::Function<FusedHeadLogprobs> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                               const at::Tensor& targets, double temperature, bool entropy, int64_t chunk,
                               int64_t matmul_dtype) {
    NoAutocast no_autocast;
    const auto dtype = static_cast<at::ScalarType>(matmul_dtype);
    ctx->save_for_backward({hidden, weight, targets});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["entropy"] = entropy;
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["dtype"] = matmul_dtype;
    auto r = compute(hidden, weight.to(dtype), targets, temperature, entropy, chunk);
    if (entropy) return {r.logp, r.entropy};
    return {r.logp};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    NoAutocast no_autocast;
    const auto saved = ctx->get_saved_variables();
    const auto &hidden = saved[0], &weight = saved[1], &targets = saved[2];
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const bool entropy = ctx->saved_data["entropy"].toBool();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    const at::Tensor g_logp = grads[0];                          // [N] or undefined
    const at::Tensor g_ent = entropy ? grads[1] : at::Tensor();  // [N] or undefined
    const bool want_h = ctx->needs_input_grad(0), want_w = ctx->needs_input_grad(1);
    const auto wm = weight.to(dtype);
    at::Tensor grad_h, grad_w;
    if (want_h) grad_h = at::empty_like(hidden);
    if (want_w) grad_w = at::zeros(weight.sizes(), weight.options().dtype(softmax_dtype(dtype)));
    Workspace ws(std::min(chunk, hidden.size(0)), weight.size(0), hidden.options().dtype(softmax_dtype(dtype)));
    for (const auto& c : chunks_of(hidden.size(0), chunk)) {
      const auto hc = hidden.narrow(0, c.begin, c.size);
      auto lp = chunk_log_softmax(hc, wm, temperature, ws);  // [c, V]
      auto p = ws.z.narrow(0, 0, c.size);                    // [c, V], over the logits
      at::exp_out(p, lp);
      // dz accumulates in lp's buffer: first the entropy's −g_H·p·(log p + H), then the
      // log-prob's g·(onehot − p).
      at::Tensor dz;
      if (g_ent.defined()) {
        const auto ge = g_ent.narrow(0, c.begin, c.size).to(lp.scalar_type()).unsqueeze(1);  // [c, 1]
        const auto H = -row_dot(p, lp);                                                      // [c, 1]
        dz = lp.add_(H).mul_(p).mul_(-ge);
      } else {
        dz = lp.zero_();
      }
      if (g_logp.defined()) {
        const auto gl = g_logp.narrow(0, c.begin, c.size).to(lp.scalar_type()).unsqueeze(1);  // [c, 1]
        dz.addcmul_(p, gl, -1.0);
        dz.scatter_add_(1, targets.narrow(0, c.begin, c.size).unsqueeze(1), gl);
      }
      if (temperature != 1.0) dz.div_(temperature);
      if (dtype == dz.scalar_type() && (!want_h || grad_h.scalar_type() == dtype)) {
        if (want_h) {
          auto gh = grad_h.narrow(0, c.begin, c.size);
          at::mm_out(gh, dz, wm);
        }
        if (want_w) grad_w.addmm_(dz.t(), hc.to(dtype));
      } else {
        const auto dzm = dz.to(dtype);
        if (want_h) grad_h.narrow(0, c.begin, c.size).copy_(dzm.matmul(wm));
        if (want_w) grad_w.add_(dzm.t().matmul(hc.to(dtype)).to(grad_w.scalar_type()));
      }
    }
    if (want_w) grad_w = grad_w.to(weight.scalar_type());
    return {grad_h, grad_w, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

HeadLogprobs head_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                           const HeadLogprobOptions& options) {
  RLFT_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
             "head_logprobs: hidden [N, D] and weight [V, D] expected, got {} and {}", hidden.sizes(), weight.sizes());
  RLFT_CHECK(targets.dim() == 1 && targets.size(0) == hidden.size(0), "head_logprobs: targets [{}] expected, got {}",
             hidden.size(0), targets.sizes());
  RLFT_CHECK(options.chunk_tokens >= 1, "head_logprobs: chunk_tokens = {}: must be >= 1", options.chunk_tokens);
  const double t = options.temperature > 0 ? options.temperature : 1.0;
  const auto dtype = options.matmul_dtype.value_or(autocast_or(hidden, weight.scalar_type()));
  const auto ids = targets.to(hidden.device(), at::kLong);
  if (hidden.size(0) == 0) {
    HeadLogprobs r;
    r.logp = at::zeros({0}, hidden.options().dtype(at::promote_types(dtype, at::kFloat))) + hidden.sum() * 0 +
             weight.sum() * 0;
    if (options.entropy) r.entropy = r.logp;
    return r;
  }
  const bool graph = at::GradMode::is_enabled() && (hidden.requires_grad() || weight.requires_grad());
  if (!graph) {
    NoAutocast no_autocast;
    return compute(hidden, weight.to(dtype), ids, t, options.entropy, options.chunk_tokens);
  }
  const auto outs = FusedHeadLogprobs::apply(hidden, weight, ids, t, options.entropy, options.chunk_tokens,
                                             static_cast<int64_t>(dtype));
  HeadLogprobs r;
  r.logp = outs[0];
  if (options.entropy) r.entropy = outs[1];
  return r;
}

int64_t chunk_tokens_for(double chunk_mib, int64_t vocab_size) {
  const double tokens = chunk_mib * 1024.0 * 1024.0 / (4.0 * static_cast<double>(std::max<int64_t>(vocab_size, 1)));
  return std::max<int64_t>(1, static_cast<int64_t>(std::floor(tokens)));
}

}  // namespace rlft::policy
