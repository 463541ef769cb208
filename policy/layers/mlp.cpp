#include "policy/layers/mlp.h"

#include <ATen/ATen.h>

#include "policy/kernels/small_gemm.h"

namespace rlft::policy {

MlpImpl::MlpImpl(const MlpOptions& o, const at::TensorOptions& p) {
  gate_proj = register_module("gate_proj", Linear(LinearOptions{o.hidden_size, o.intermediate_size, o.bias}, p));
  up_proj = register_module("up_proj", Linear(LinearOptions{o.hidden_size, o.intermediate_size, o.bias}, p));
  down_proj = register_module("down_proj", Linear(LinearOptions{o.intermediate_size, o.hidden_size, o.bias}, p));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  auto gate_up = apply_linears(x, {gate_proj, up_proj});
  if (!at::GradMode::is_enabled()) return down_proj(at::silu_(gate_up[0]).mul_(gate_up[1]));  // in place
  return down_proj(at::silu(gate_up[0]) * gate_up[1]);
}

}  // namespace rlft::policy
