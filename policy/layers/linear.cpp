#include "policy/layers/linear.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "policy/kernels/small_gemm.h"

namespace rlft::policy {

LinearImpl::LinearImpl(const LinearOptions& options, const at::TensorOptions& param_options) : options_(options) {
  weight = register_parameter("weight", at::empty({options.out_features, options.in_features}, param_options));
  if (options.bias) bias = register_parameter("bias", at::empty({options.out_features}, param_options));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  const auto y = policy::linear(x, weight, bias);
  return adapter_active() ? add_adapter(y, x) : y;
}

void LinearImpl::attach_adapter(int64_t rank, double scaling, double dropout) {
  RLFT_CHECK(!lora_A_, "Linear: an adapter is already attached");
  RLFT_CHECK(rank > 0, "Linear: LoRA rank {} must be > 0", rank);
  const auto p = weight.options();
  lora_A_ = register_module("lora_A", std::make_shared<LinearImpl>(LinearOptions{options_.in_features, rank}, p));
  lora_B_ = register_module("lora_B", std::make_shared<LinearImpl>(LinearOptions{rank, options_.out_features}, p));
  scaling_ = scaling;
  dropout_ = dropout;
  adapter_enabled_ = true;
}

void LinearImpl::detach_adapter() {
  if (!lora_A_) return;
  unregister_module("lora_A");
  unregister_module("lora_B");
  lora_A_.reset();
  lora_B_.reset();
  scaling_ = 0.0;
}

torch::Tensor LinearImpl::add_adapter(const torch::Tensor& y, const torch::Tensor& x) {
  if (!adapter_active()) return y;
  auto in = x;
  if (dropout_ > 0.0 && is_training() && at::GradMode::is_enabled()) in = at::dropout(x, dropout_, true);
  const auto delta = policy::linear(policy::linear(in, lora_A_->weight), lora_B_->weight);  // [..., out]
  if (!at::GradMode::is_enabled() && !y.requires_grad() && y.scalar_type() == delta.scalar_type())
    return y.add_(delta, scaling_);  // y is this call's own output
  return y + delta * scaling_;
}

torch::Tensor LinearImpl::effective_weight() {
  if (!adapter_active()) return weight;
  return weight + at::matmul(lora_B_->weight, lora_A_->weight).to(weight.scalar_type()) * scaling_;
}

void LinearImpl::merge_adapter() {
  if (!lora_A_) return;
  {
    at::NoGradGuard no_grad;
    const auto delta = at::matmul(lora_B_->weight.to(at::kFloat), lora_A_->weight.to(at::kFloat)) * scaling_;
    weight.add_(delta.to(weight.scalar_type()));
  }
  detach_adapter();
}

torch::Tensor LinearImpl::lora_A_weight() const {
  return lora_A_ ? lora_A_->weight : torch::Tensor();
}

torch::Tensor LinearImpl::lora_B_weight() const {
  return lora_B_ ? lora_B_->weight : torch::Tensor();
}

std::vector<torch::Tensor> apply_linears(const torch::Tensor& x, const std::vector<Linear>& layers) {
  std::vector<at::Tensor> ws, bs;
  for (const auto& l : layers) {
    ws.push_back(l->weight);
    bs.push_back(l->bias);
  }
  auto out = linear_many(x, ws, bs);
  for (size_t i = 0; i < layers.size(); ++i) {
    Linear l = layers[i];
    if (l->adapter_active()) out[i] = l->add_adapter(out[i], x);
  }
  return out;
}

EmbeddingImpl::EmbeddingImpl(int64_t n_rows, int64_t dim, const at::TensorOptions& param_options) {
  weight = register_parameter("weight", at::empty({n_rows, dim}, param_options));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) {
  return at::embedding(weight, ids);
}

}  // namespace rlft::policy
