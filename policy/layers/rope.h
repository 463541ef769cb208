#pragma once
// Rotary position embedding (RoPE) with the scalings Hugging Face checkpoints use: default,
// linear, YaRN (DeepSeek-V3, Qwen long context) and llama3; and the two layouts: rotate_half
// (Qwen, Llama) and adjacent pairs (DeepSeek, `rope_interleave`), which transformers
// reproduces by de-interleaving the rotated dims before rotate_half (apply_rotary_pos_emb_
// interleave); rlft does the same, so rotated q/k match transformers element by element.
//
// Shapes: positions [B, T] int64 (padding -1 is clamped to 0, its outputs are masked);
// cos/sin [B, 1, T, dim]; x [B, H, T, dim].

#include <ATen/ATen.h>

#include <utility>

#include "policy/model_config.h"

namespace rlft::policy {

struct RopeOptions {
  int64_t dim = 0;                      ///< rotated width (even): head_dim, or qk_rope_head_dim for MLA
  double theta = 10000.0;               ///< base (rope_theta)
  RopeScaling scaling;                  ///< rope_scaling of config.json
  int64_t max_position_embeddings = 0;  ///< the fallback original context for YaRN
  bool interleaved = false;             ///< adjacent-pair layout (DeepSeek)
};

class RotaryEmbedding {
 public:
  RotaryEmbedding() = default;
  explicit RotaryEmbedding(const RopeOptions& options);
  /// cos and sin [B, 1, T, dim] for positions [B, T], computed in fp32 then cast to `dtype`.
  std::pair<at::Tensor, at::Tensor> cos_sin(const at::Tensor& positions, at::ScalarType dtype) const;
  /// Inference (fp32 on the CPU, no gradient wanted): x [B, T, H, dim] (unit last stride), rotated
  /// for positions [B, T] in one pass → [B, H, T, dim] contiguous; equals
  /// apply_rope(x.transpose(1, 2), cos_sin(positions)) to float rounding. Undefined when x
  /// does not qualify (the caller then takes apply_rope).
  at::Tensor rotate_inference(const at::Tensor& x, const at::Tensor& positions) const;
  const at::Tensor& inv_freq() const { return inv_freq_; }         ///< [dim / 2] fp32, CPU
  double attention_scaling() const { return attention_scaling_; }  ///< cos/sin multiplier (YaRN)
  const RopeOptions& options() const { return options_; }

 private:
  RopeOptions options_;
  at::Tensor inv_freq_;
  double attention_scaling_ = 1.0;
};

/// x [B, H, T, dim] rotated by (cos, sin) [B, 1, T, dim]: x·cos + rotate_half(x)·sin; with
/// `interleaved`, x is first re-ordered from (x0, x1, x2, x3, …) to (x0, x2, …, x1, x3, …).
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, bool interleaved);

/// YaRN magnitude correction 0.1·m·ln(s) + 1 (1 when s <= 1).
double yarn_mscale(double scale, double m);

}  // namespace rlft::policy
