#pragma once
// The optimizer: AdamW (Loshchilov & Hutter 2019) over fp32 master weights, with weight
// decay on matrices only (norm weights, biases and router correction biases — every tensor
// of fewer than 2 dimensions — are not decayed), global grad-norm clipping, a non-finite
// check that keeps bad gradients away from the weights, and state that saves and loads
// exactly (a resumed run continues bitwise).

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace rlft::rl {

struct OptimizerOptions {
  double beta1 = 0.9;          ///< AdamW β₁ in [0, 1)
  double beta2 = 0.999;        ///< AdamW β₂ in [0, 1)
  double eps = 1e-8;           ///< AdamW ε (> 0)
  double weight_decay = 0.0;   ///< decoupled weight decay on matrices (>= 0)
  double max_grad_norm = 1.0;  ///< clip the global L2 norm of the gradients to this; 0 = no clipping
  void validate() const;       ///< throws rlft::OptionError naming the field
};

struct StepReport {
  double grad_norm = 0.0;  ///< global L2 norm before clipping (inf/nan when not finite)
  bool applied = false;    ///< false: the gradients were not finite and the step was skipped
};

class Optimizer {
 public:
  /// `params`: (name, tensor) pairs, tensors requiring grad (float32 master weights).
  Optimizer(const std::vector<std::pair<std::string, at::Tensor>>& params, const OptimizerOptions& options);

  /// Divides the gradients by `grad_divisor` (the loss scale, or 1), checks they are finite,
  /// clips them, and applies one AdamW step at learning rate `lr`. A non-finite gradient
  /// skips the step (weights and moments untouched). Gradients are zeroed either way.
  StepReport step(double lr, double grad_divisor = 1.0);
  void zero_grad();

  /// The optimizer's state (moments, step counts) to/from bytes, exactly.
  std::string save_state() const;
  void load_state(const std::string& bytes);

  int64_t n_decayed() const { return n_decayed_; }
  int64_t n_not_decayed() const { return n_not_decayed_; }

 private:
  OptimizerOptions options_;
  std::vector<at::Tensor> params_;
  std::unique_ptr<torch::optim::AdamW> adamw_;
  int64_t n_decayed_ = 0;
  int64_t n_not_decayed_ = 0;
};

/// Every parameter of `module` that requires grad, with its name (what the optimizer steps;
/// parameters that never get a gradient, e.g. an unused LM head, are skipped by AdamW).
std::vector<std::pair<std::string, at::Tensor>> trainable_parameters(const torch::nn::Module& module);

}  // namespace rlft::rl
