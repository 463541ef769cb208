#pragma once
// The two plain weight modules: Linear (y = x W^T + b) and Embedding (a row lookup).
// Parameters are allocated uninitialised in the given dtype/device and filled by the
// model's seeded init or by a checkpoint load — never by LibTorch's global RNG.
//
// Shapes: W [out, in] (PyTorch / Hugging Face convention), b [out]; x [..., in] -> [..., out].
//
// A Linear may carry a LoRA adapter (policy/lora.h attaches it): submodules "lora_A"
// (weight A [r, in]) and "lora_B" (weight B [out, r]), so named_parameters() gives PEFT's
// names less its prefix (…q_proj.lora_A.weight). Then y = x Wᵀ + b + s · (drop(x) Aᵀ) Bᵀ,
// s = alpha / r (or alpha / √r with rsLoRA), dropout only in training mode with gradients
// on; switched off as a whole, y is the base layer's alone. W is never changed.

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <vector>

namespace rlft::policy {

struct LinearOptions {
  int64_t in_features = 0;   ///< input width
  int64_t out_features = 0;  ///< output width
  bool bias = false;         ///< registers "bias" [out]
};

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(const LinearOptions& options, const at::TensorOptions& param_options);
  torch::Tensor forward(const torch::Tensor& x);  ///< [..., in] -> [..., out]
  torch::Tensor weight;                           ///< [out, in]
  torch::Tensor bias;                             ///< [out] or undefined
  const LinearOptions& options() const { return options_; }

  /// Registers lora_A [r, in] and lora_B [out, r] (uninitialised, in W's dtype and device).
  /// Errors when the layer already has one.
  void attach_adapter(int64_t rank, double scaling, double dropout);
  /// Drops the adapter (after merge_adapter(), or to undo attach_adapter()).
  void detach_adapter();
  /// Whether an adapter is attached (switched on or not).
  bool has_adapter() const { return static_cast<bool>(lora_A_); }
  /// Whether forward() adds the adapter: attached and switched on.
  bool adapter_active() const { return lora_A_ && adapter_enabled_; }
  void set_adapter_enabled(bool on) { adapter_enabled_ = on; }
  /// y + s · B(A(drop(x))) when the adapter is active, else y: for callers that computed
  /// x Wᵀ (+ b) themselves (linear_many over several projections of one input).
  torch::Tensor add_adapter(const torch::Tensor& y, const torch::Tensor& x);
  /// W + s · B·A when the adapter is active, else W (for products that use slices of the
  /// weight directly: MLA's absorbed attention).
  torch::Tensor effective_weight();
  /// W += s · B·A in place (no gradient), then the adapter is dropped.
  void merge_adapter();
  torch::Tensor lora_A_weight() const;  ///< [r, in], undefined without an adapter
  torch::Tensor lora_B_weight() const;  ///< [out, r], undefined without an adapter
  double adapter_scaling() const { return scaling_; }

 private:
  LinearOptions options_;
  std::shared_ptr<LinearImpl> lora_A_, lora_B_;
  double scaling_ = 0.0;
  double dropout_ = 0.0;
  bool adapter_enabled_ = true;
};
TORCH_MODULE(Linear);

/// Several layers of one input (q, k, v; gate, up): linear_many over their weights and
/// biases (one threaded pass of the few-rows kernel in decode), each with its adapter added.
std::vector<torch::Tensor> apply_linears(const torch::Tensor& x, const std::vector<Linear>& layers);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t n_rows, int64_t dim, const at::TensorOptions& param_options);
  torch::Tensor forward(const torch::Tensor& ids);  ///< [...] int64 -> [..., dim]
  torch::Tensor weight;                             ///< [n_rows, dim]
};
TORCH_MODULE(Embedding);

}  // namespace rlft::policy
