#pragma once
// Shared helpers of the policy tests: the tiny models of configs/model/, built with a fixed
// seed, and the error measure the tests assert on.

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <string>
#include <vector>

#include "core/config.h"
#include "policy/arch/arch.h"
#include "policy/causal_lm.h"

namespace rlft::test {

/// configs/model/tiny-NAME.yaml (NAME: deepseek-v3, qwen2-moe, qwen3-moe, qwen2, llama).
inline std::string tiny_config_path(const std::string& name) {
  return std::string(RLFT_SOURCE_DIR) + "/configs/model/tiny-" + name + ".yaml";
}

inline const std::vector<std::string>& tiny_names() {
  static const std::vector<std::string> names{"deepseek-v3", "qwen2-moe", "qwen3-moe", "qwen2", "llama"};
  return names;
}

/// The tiny config NAME with `overrides` ("model.key=value") applied.
inline policy::ModelConfig tiny_config(const std::string& name, const std::vector<std::string>& overrides = {}) {
  const ConfigView view = ConfigView::load(tiny_config_path(name), overrides);
  return policy::read_model_config_yaml(view.section("model"), policy::builtin_architectures());
}

/// The tiny model NAME, initialised with `seed`; MoE router biases get small random values
/// so that selection and gating differ (as after aux-loss-free balancing).
inline policy::CausalLM tiny_model(const policy::ModelConfig& config, uint64_t seed = 7,
                                   at::ScalarType dtype = at::kFloat) {
  policy::ModelOptions o;
  o.dtype = dtype;
  auto model = policy::build_model(config, o, policy::builtin_architectures());
  model->init_weights(seed);
  at::NoGradGuard no_grad;
  int64_t i = 0;
  for (auto& b : model->named_buffers())
    if (b.key().find("e_score_correction_bias") != std::string::npos) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + 1000 + i++);
      b.value().copy_(at::empty(b.value().sizes(), at::kFloat).uniform_(-0.05, 0.05, gen));
    }
  return model;
}

inline policy::CausalLM tiny_model(const std::string& name, uint64_t seed = 7, at::ScalarType dtype = at::kFloat) {
  return tiny_model(tiny_config(name), seed, dtype);
}

/// Standard normal float32 values of `shape` from their own generator seeded with `seed`.
inline at::Tensor seeded_randn(std::vector<int64_t> shape, uint64_t seed) {
  return at::randn(shape, at::make_generator<at::CPUGeneratorImpl>(seed), at::TensorOptions().dtype(at::kFloat));
}

/// max |a − b| / max |b|.
inline double rel_err(const at::Tensor& a, const at::Tensor& b) {
  const auto a64 = a.to(at::kDouble), b64 = b.to(at::kDouble);
  return (a64 - b64).abs().max().item<double>() / std::max(b64.abs().max().item<double>(), 1e-30);
}

/// Random token ids [B, T] in [2, vocab) from a fixed seed.
inline at::Tensor random_tokens(int64_t B, int64_t T, int64_t vocab, uint64_t seed = 1) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(2, vocab, {B, T}, gen, at::TensorOptions().dtype(at::kLong));
}

}  // namespace rlft::test
