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
  /// Leaves every gradient undefined (PyTorch's set_to_none): parameters without a gradient
  /// in a step are skipped by AdamW.
  void zero_grad();

  /// The optimizer's state — each parameter's two moments and step count — to and from a
  /// safetensors file (`<param>.exp_avg`, `<param>.exp_avg_sq`, `<param>.step`), exactly.
  /// Written tensor by tensor from the live state: saving costs no copy of the moments (a
  /// 0.6B-parameter policy has 4.8 GB of them). Loading checks every name and shape.
  void save_state(const std::string& path) const;
  void load_state(const std::string& path);
  /// The format of checkpoints written before the safetensors file (`optimizer.bin`, a
  /// LibTorch archive), read so that those runs still resume.
  void load_archive_state(const std::string& bytes);

  /// Replicating one rank's state on the others without serialising it: the manifest (the
  /// parameters that have state, with their step counts, as JSON) goes first; the receivers
  /// create zero state from it; then state_tensors() (in manifest order) are broadcast in place.
  std::string state_manifest() const;
  void create_state(const std::string& manifest);
  std::vector<at::Tensor> state_tensors() const;

  int64_t n_decayed() const { return n_decayed_; }
  int64_t n_not_decayed() const { return n_not_decayed_; }

 private:
  OptimizerOptions options_;
  std::vector<at::Tensor> params_;
  std::vector<std::string> names_;  ///< aligned with params_
  std::unique_ptr<torch::optim::AdamW> adamw_;
  int64_t n_decayed_ = 0;
  int64_t n_not_decayed_ = 0;
};

/// Every parameter of `module` that requires grad, with its name (what the optimizer steps;
/// parameters that never get a gradient, e.g. an unused LM head, are skipped by AdamW).
std::vector<std::pair<std::string, at::Tensor>> trainable_parameters(const torch::nn::Module& module);

}  // namespace rlft::rl
