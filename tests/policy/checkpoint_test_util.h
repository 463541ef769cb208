#pragma once
// Helpers shared by the checkpoint tests: tensors of every dtype, bitwise comparison, and
// error capture.

#include "policy/checkpoint/safetensors.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include "tests/support/text_util.h"

namespace rlft::test {

/// A tensor of `type` with varied values (for floats: negative zero, ±inf, NaN, subnormals
/// and ordinary values), deterministic in `seed`.
inline at::Tensor varied_tensor(at::ScalarType type, std::vector<int64_t> shape, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  if (type == at::kBool) return at::randint(0, 2, shape, gen, at::kLong).to(at::kBool);
  if (type == at::kByte) return at::randint(0, 256, shape, gen, at::kLong).to(at::kByte);
  if (type == at::kChar || type == at::kShort || type == at::kInt || type == at::kLong) {
    const int64_t hi = type == at::kChar ? 127 : type == at::kShort ? 32767 : 1'000'000'000;
    at::Tensor t = at::randint(-hi, hi, shape, gen, at::kLong);
    if (type == at::kLong) t = t * 1'000'003;
    return t.to(type);
  }
  at::Tensor t = at::randn(shape, gen, at::kDouble) * 10;
  if (t.numel() >= 6) {
    auto flat = t.view({-1});
    flat[0] = -0.0;
    flat[1] = std::numeric_limits<double>::infinity();
    flat[2] = -std::numeric_limits<double>::infinity();
    flat[3] = std::numeric_limits<double>::quiet_NaN();
    flat[4] = 1e-40;  // subnormal in f32 / bf16
    flat[5] = 3e-6;   // subnormal in f16
  }
  return t.to(type);
}

/// Same dtype, same shape, same bytes.
inline bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

inline bool bitwise_equal(const checkpoint::TensorMap& a, const checkpoint::TensorMap& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    const auto it = b.find(name);
    if (it == b.end() || !bitwise_equal(t, it->second)) return false;
  }
  return true;
}

/// The message of the exception `fn` throws ("" when it throws nothing).
}  // namespace rlft::test
