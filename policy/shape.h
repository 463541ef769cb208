#pragma once
// Shapes in messages: shape_str(t.sizes()) -> "[2, 8, 64]", and RLFT_CHECK_SHAPE for the
// checks at module boundaries (STYLE.md rule 8), which print actual vs expected.

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "core/error.h"

namespace rlft::policy {

inline std::string shape_str(at::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

inline std::string shape_str(const at::Tensor& t) {
  return t.defined() ? shape_str(t.sizes()) : "(undefined)";
}

}  // namespace rlft::policy

/// RLFT_CHECK_SHAPE(tensor, {2, -1, 64}, "what"): throws rlft::Error "what: expected shape
/// [2, *, 64], got [2, 5, 32]" unless the tensor has that many dims and every size that is
/// not -1 matches.
#define RLFT_CHECK_SHAPE(tensor, expected, what)                                                                  \
  do {                                                                                                            \
    const std::vector<int64_t> rlft_expected_ = expected;                                                         \
    const auto& rlft_t_ = (tensor);                                                                               \
    bool rlft_ok_ = rlft_t_.defined() && rlft_t_.dim() == static_cast<int64_t>(rlft_expected_.size());            \
    for (size_t rlft_i_ = 0; rlft_ok_ && rlft_i_ < rlft_expected_.size(); ++rlft_i_)                              \
      rlft_ok_ = rlft_expected_[rlft_i_] < 0 || rlft_expected_[rlft_i_] == rlft_t_.size(rlft_i_);                 \
    if (!rlft_ok_) {                                                                                              \
      std::string rlft_want_ = "[";                                                                               \
      for (size_t rlft_i_ = 0; rlft_i_ < rlft_expected_.size(); ++rlft_i_)                                        \
        rlft_want_ += (rlft_i_ ? ", " : "") +                                                                     \
                      (rlft_expected_[rlft_i_] < 0 ? std::string("*") : std::to_string(rlft_expected_[rlft_i_])); \
      throw ::rlft::Error(                                                                                        \
          ::fmt::format("{}: expected shape {}], got {}", what, rlft_want_, ::rlft::policy::shape_str(rlft_t_))); \
    }                                                                                                             \
  } while (false)
