#include "policy/layers/moe.h"

#include <ATen/ATen.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <cstring>
#include <vector>

#include "core/error.h"
#include "policy/kernels/small_gemm.h"
#include "policy/shape.h"

namespace rlft::policy {

MoeGateImpl::MoeGateImpl(int64_t n_experts, int64_t hidden_size, bool with_bias, const at::TensorOptions& p) {
  weight = register_parameter("weight", at::empty({n_experts, hidden_size}, p));
  if (with_bias)
    e_score_correction_bias = register_buffer("e_score_correction_bias", at::zeros({n_experts}, p.dtype(at::kFloat)));
}

at::Tensor MoeGateImpl::forward(const at::Tensor& x) {
  // The router is fp32 under mixed precision too: autocast must not cast this product down.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  return at::linear(x.to(at::kFloat), weight.to(at::kFloat));
}

MoeImpl::MoeImpl(const MoeOptions& o, const at::TensorOptions& p) : options_(o) {
  o.router.validate();
  RLFT_CHECK(o.router_bias || !o.router_bias_balanced, "MoE: router_bias_balanced needs router_bias");
  gate = register_module("gate", MoeGate(o.router.n_experts, o.hidden_size, o.router_bias, p));
  experts = register_module("experts", torch::nn::ModuleList());
  for (int64_t e = 0; e < o.router.n_experts; ++e) {
    expert_list.push_back(Mlp(MlpOptions{o.hidden_size, o.expert_intermediate_size, false}, p));
    experts->push_back(expert_list.back());
  }
  if (o.shared_intermediate_size > 0) {
    const MlpOptions so{o.hidden_size, o.shared_intermediate_size, false};
    if (o.shared_expert_gated) {
      shared = register_module("shared_expert", Mlp(so, p));
      shared_expert_gate = register_module("shared_expert_gate", Linear(LinearOptions{o.hidden_size, 1, false}, p));
    } else {
      shared = register_module("shared_experts", Mlp(so, p));
    }
  }
}

at::Tensor MoeImpl::routed(const at::Tensor& x, const at::Tensor& indices, const at::Tensor& weights,
                           const at::Tensor& valid) {
  const int64_t N = x.size(0), D = x.size(1), K = indices.size(1), E = options_.router.n_experts;
  at::Tensor order, counts_cpu;
  {
    at::NoGradGuard no_grad;
    auto flat = indices.reshape({-1});  // [N·K]
    // Padding tokens go to a virtual expert E, sorted last and never computed.
    if (valid.defined()) flat = flat.masked_fill(valid.reshape({-1, 1}).expand({N, K}).reshape({-1}).logical_not(), E);
    order = std::get<1>(flat.sort(/*stable=*/true, 0, false));  // [N·K]
    counts_cpu = at::bincount(flat, {}, E + 1).to(at::kCPU);
  }
  const auto* counts = counts_cpu.data_ptr<int64_t>();
  const int64_t n_assigned = N * K - counts[E];
  const auto slots = order.narrow(0, 0, n_assigned);
  const auto token_of = at::div(slots, K, "floor");                    // [A] token of each sorted slot
  const auto x_sorted = x.index_select(0, token_of);                   // [A, D]
  const auto w_sorted = weights.reshape({-1}).index_select(0, slots);  // [A] fp32
  auto out = at::zeros({N, D}, x.options().dtype(at::kFloat));
  if (n_assigned == 0) return out.to(x.scalar_type());
  const auto y = experts_forward(x_sorted, counts).to(at::kFloat) * w_sorted.unsqueeze(1);  // [A, D] weighted, fp32
  return out.index_add(0, token_of, y).to(x.scalar_type());
}

at::Tensor MoeImpl::experts_forward(const at::Tensor& x_sorted, const int64_t* counts) {
  const int64_t E = options_.router.n_experts;
  if (few_rows_path(x_sorted, counts)) return experts_few_rows(x_sorted, counts);
  std::vector<at::Tensor> outputs;
  int64_t offset = 0;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t c = counts[e];
    if (c == 0) continue;
    const auto xe = x_sorted.narrow(0, offset, c);  // [c, D]
    Mlp ex = expert_list[static_cast<size_t>(e)];
    const auto h = at::silu(ex->gate_proj(xe)) * ex->up_proj(xe);  // [c, I], adapters included
    outputs.push_back(ex->down_proj(h));                           // [c, D]
    offset += c;
  }
  return at::cat(outputs, 0);
}

bool MoeImpl::adapters_active() const {
  for (const auto& ex : expert_list)
    if (ex->gate_proj->adapter_active() || ex->up_proj->adapter_active() || ex->down_proj->adapter_active())
      return true;
  return false;
}

bool MoeImpl::few_rows_path(const at::Tensor& x_sorted, const int64_t* counts) const {
  bool any_few = false;
  for (int64_t e = 0; e < options_.router.n_experts; ++e)
    any_few = any_few || (counts[e] > 0 && counts[e] <= kSmallGemmMaxRows);
  if (!any_few || !x_sorted.is_contiguous() || adapters_active()) return false;
  for (const auto& ex : expert_list)
    if (!small_gemm_takes(x_sorted, ex->gate_proj->weight) || !small_gemm_takes(x_sorted, ex->up_proj->weight) ||
        !small_gemm_takes_weight(ex->down_proj->weight))
      return false;
  return true;
}

// Inference with few rows per expert (decode): the gate and up products of every expert with
// at most kSmallGemmMaxRows rows in one threaded pass of the few-rows kernel (experts with
// more rows, which routing can favour, through BLAS into their slices), SiLU·up over all
// rows at once, then the down products the same way: two parallel regions per layer instead
// of three BLAS calls per expert, each weight read once.
at::Tensor MoeImpl::experts_few_rows(const at::Tensor& x_sorted, const int64_t* counts) {
  const int64_t A = x_sorted.size(0), D = x_sorted.size(1), I = options_.expert_intermediate_size;
  auto gate = at::empty({A, I}, x_sorted.options());  // [A, I]
  auto up = at::empty({A, I}, x_sorted.options());    // [A, I]
  auto y = at::empty({A, D}, x_sorted.options());     // [A, D]
  const float* xs = x_sorted.data_ptr<float>();
  std::vector<SmallGemmJob> in_jobs, out_jobs;
  int64_t offset = 0;
  for (int64_t e = 0; e < options_.router.n_experts; ++e) {
    const int64_t c = counts[e];
    if (c == 0) continue;
    const auto& ex = expert_list[static_cast<size_t>(e)];
    if (c > kSmallGemmMaxRows) {
      const auto xe = x_sorted.narrow(0, offset, c);                                  // [c, D]
      auto gate_rows = gate.narrow(0, offset, c), up_rows = up.narrow(0, offset, c);  // views into gate, up
      at::mm_out(gate_rows, xe, ex->gate_proj->weight.t());
      at::mm_out(up_rows, xe, ex->up_proj->weight.t());
    } else {
      in_jobs.push_back({xs + offset * D, D, c, ex->gate_proj->weight.data_ptr<float>(), D, I,
                         gate.data_ptr<float>() + offset * I, I});
      in_jobs.push_back(
          {xs + offset * D, D, c, ex->up_proj->weight.data_ptr<float>(), D, I, up.data_ptr<float>() + offset * I, I});
    }
    offset += c;
  }
  run_small_gemm(in_jobs);
  const auto h = at::silu_(gate).mul_(up);  // [A, I]
  offset = 0;
  for (int64_t e = 0; e < options_.router.n_experts; ++e) {
    const int64_t c = counts[e];
    if (c == 0) continue;
    const auto& down = expert_list[static_cast<size_t>(e)]->down_proj->weight;
    if (c > kSmallGemmMaxRows) {
      auto y_rows = y.narrow(0, offset, c);  // a view into y
      at::mm_out(y_rows, h.narrow(0, offset, c), down.t());
    } else {
      out_jobs.push_back(
          {h.data_ptr<float>() + offset * I, I, c, down.data_ptr<float>(), I, D, y.data_ptr<float>() + offset * D, D});
    }
    offset += c;
  }
  run_small_gemm(out_jobs);
  return y;
}

bool MoeImpl::few_tokens_path(const at::Tensor& x, const MoeInputs& in) const {
  if (in.switch_terms || x.size(0) > kSmallGemmMaxRows || !x.is_contiguous() || !small_gemm_takes_operand(x) ||
      adapters_active())
    return false;
  for (const auto& ex : expert_list)
    if (!small_gemm_takes_weight(ex->gate_proj->weight) || !small_gemm_takes_weight(ex->up_proj->weight) ||
        !small_gemm_takes_weight(ex->down_proj->weight))
      return false;
  return true;
}

MoeOutput MoeImpl::forward_few_tokens(const at::Tensor& x, const MoeInputs& in) {
  const auto& o = options_;
  const int64_t N = x.size(0), D = x.size(1), E = o.router.n_experts;
  // The router through ATen, as in training: expert choices must not hinge on summation order.
  const auto r = route(gate(x), gate->e_score_correction_bias, o.router, in.replay);
  const int64_t K = r.indices.size(1);
  const auto indices = r.indices.to(at::kCPU).contiguous();
  const auto weights = r.weights.to(at::kCPU, at::kFloat).contiguous();
  const auto valid = in.valid.defined() ? in.valid.to(at::kCPU, at::kBool).contiguous() : at::Tensor();
  const int64_t* idx = indices.data_ptr<int64_t>();
  const float* wt = weights.data_ptr<float>();
  const bool* ok = valid.defined() ? valid.data_ptr<bool>() : nullptr;

  // Counting sort of the (token, k) slots by expert, tokens in order within an expert: the
  // order routed() gets from its stable sort. Padding tokens are routed nowhere.
  std::vector<int64_t> counts(static_cast<size_t>(E), 0), start(static_cast<size_t>(E), 0);
  for (int64_t n = 0; n < N; ++n)
    if (!ok || ok[n])
      for (int64_t k = 0; k < K; ++k) ++counts[static_cast<size_t>(idx[n * K + k])];
  for (int64_t e = 1; e < E; ++e) start[static_cast<size_t>(e)] = start[static_cast<size_t>(e - 1)] + counts[e - 1];
  const int64_t A = E > 0 ? start.back() + counts.back() : 0;
  std::vector<int64_t> token_of(static_cast<size_t>(A));
  std::vector<float> weight_of(static_cast<size_t>(A));
  auto x_sorted = at::empty({A, D}, x.options());  // [A, D]
  const float* xs = x.data_ptr<float>();
  float* xd = x_sorted.data_ptr<float>();
  {
    std::vector<int64_t> next = start;
    for (int64_t n = 0; n < N; ++n) {
      if (ok && !ok[n]) continue;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t slot = next[static_cast<size_t>(idx[n * K + k])]++;
        token_of[static_cast<size_t>(slot)] = n;
        weight_of[static_cast<size_t>(slot)] = wt[n * K + k];
        std::memcpy(xd + slot * D, xs + n * D, static_cast<size_t>(D) * sizeof(float));
      }
    }
  }
  // The combine in routed()'s order: each slot's weighted output added in expert order.
  auto hidden = at::zeros({N, D}, x.options());  // [N, D]
  if (A > 0) {
    const auto y = experts_few_rows(x_sorted, counts.data());  // [A, D] unweighted
    const float* yd = y.data_ptr<float>();
    float* hd = hidden.data_ptr<float>();
    for (int64_t a = 0; a < A; ++a) {
      float* dst = hd + token_of[static_cast<size_t>(a)] * D;
      const float* src = yd + a * D;
      const float w = weight_of[static_cast<size_t>(a)];
      for (int64_t d = 0; d < D; ++d) dst[d] += src[d] * w;
    }
  }
  MoeOutput out;
  out.indices = r.indices;
  out.scores = r.scores;
  out.load = at::tensor(counts, at::TensorOptions().dtype(at::kLong));
  out.hidden = hidden;
  if (shared) {
    auto s = shared(x);
    if (shared_expert_gate) s = at::sigmoid(shared_expert_gate(x)) * s;
    out.hidden.add_(s);
  }
  return out;
}

MoeOutput MoeImpl::forward(const at::Tensor& x, const MoeInputs& in) {
  const auto& o = options_;
  RLFT_CHECK_SHAPE(x, std::vector<int64_t>({-1, o.hidden_size}), "MoE input");
  if (few_tokens_path(x, in)) return forward_few_tokens(x, in);
  const auto logits = gate(x);  // [N, E] fp32
  const auto r = route(logits, gate->e_score_correction_bias, o.router, in.replay);
  MoeOutput out;
  out.indices = r.indices;
  out.scores = r.scores;
  out.load = expert_load(r.indices, in.valid, o.router.n_experts);
  if (in.switch_terms) out.switch_terms = switch_terms(logits, in.valid, o.router.top_k);
  out.hidden = routed(x, r.indices, r.weights, in.valid);
  if (shared) {
    auto s = shared(x);
    if (shared_expert_gate) s = at::sigmoid(shared_expert_gate(x)) * s;
    out.hidden = out.hidden + s;
  }
  return out;
}

}  // namespace rlft::policy
