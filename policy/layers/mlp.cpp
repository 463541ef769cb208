#include "policy/layers/mlp.h"

#include <ATen/ATen.h>

namespace rlft::policy {

MlpImpl::MlpImpl(const MlpOptions& o, const at::TensorOptions& p) {
  gate_proj = register_module("gate_proj", Linear(LinearOptions{o.hidden_size, o.intermediate_size, o.bias}, p));
  up_proj = register_module("up_proj", Linear(LinearOptions{o.hidden_size, o.intermediate_size, o.bias}, p));
  down_proj = register_module("down_proj", Linear(LinearOptions{o.intermediate_size, o.hidden_size, o.bias}, p));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  return down_proj(at::silu(gate_proj(x)) * up_proj(x));
}

}  // namespace rlft::policy
