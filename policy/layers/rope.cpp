#include "policy/layers/rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "policy/kernels/small_gemm.h"

namespace rlft::policy {

double yarn_mscale(double scale, double m) {
  return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
}

namespace {

// base^(2i/dim) for i < dim/2, in fp32 as transformers computes it.
at::Tensor pos_freqs(double theta, int64_t dim) {
  const auto exponents = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(dim);
  return at::pow(theta, exponents);
}

// YaRN (arXiv 2309.00071) as transformers' _compute_yarn_parameters: interpolate the low
// frequencies by `factor`, keep the high ones, ramp linearly between the correction dims.
at::Tensor yarn_inv_freq(const RopeOptions& o, double* attention_factor) {
  const RopeScaling& s = o.scaling;
  const int64_t dim = o.dim;
  const double base = o.theta;
  const double original = static_cast<double>(
      s.original_max_position_embeddings > 0 ? s.original_max_position_embeddings : o.max_position_embeddings);
  RLFT_CHECK(original > 0, "rope_scaling yarn needs original_max_position_embeddings or max_position_embeddings");
  if (s.attention_factor) {
    *attention_factor = *s.attention_factor;
  } else if (s.mscale != 0.0 && s.mscale_all_dim != 0.0) {
    *attention_factor = yarn_mscale(s.factor, s.mscale) / yarn_mscale(s.factor, s.mscale_all_dim);
  } else {
    *attention_factor = yarn_mscale(s.factor, 1.0);
  }
  auto correction_dim = [&](double n_rotations) {
    return dim * std::log(original / (n_rotations * 2.0 * M_PI)) / (2.0 * std::log(base));
  };
  double low = correction_dim(s.beta_fast);
  double high = correction_dim(s.beta_slow);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // as transformers: avoid a zero-width ramp
  const auto ramp = ((at::arange(dim / 2, at::kFloat) - low) / (high - low)).clamp(0.0, 1.0);
  const auto extrapolation_factor = 1.0 - ramp;
  const auto pf = pos_freqs(base, dim);
  const auto inv_extrapolation = 1.0 / pf;
  const auto inv_interpolation = 1.0 / (s.factor * pf);
  return inv_interpolation * (1.0 - extrapolation_factor) + inv_extrapolation * extrapolation_factor;
}

// Llama 3.1 frequency-dependent scaling (transformers' _compute_llama3_parameters).
at::Tensor llama3_inv_freq(const RopeOptions& o) {
  const RopeScaling& s = o.scaling;
  const auto inv = 1.0 / pos_freqs(o.theta, o.dim);
  const double old_context = static_cast<double>(s.original_max_position_embeddings);
  RLFT_CHECK(old_context > 0, "rope_scaling llama3 needs original_max_position_embeddings");
  const double low_wavelen = old_context / s.low_freq_factor;
  const double high_wavelen = old_context / s.high_freq_factor;
  const auto wavelen = 2.0 * M_PI / inv;
  auto scaled = at::where(wavelen > low_wavelen, inv / s.factor, inv);
  const auto smooth = (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  const auto smoothed = (1.0 - smooth) * scaled / s.factor + smooth * scaled;
  const auto medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
  return at::where(medium, smoothed, scaled);
}

}  // namespace

RotaryEmbedding::RotaryEmbedding(const RopeOptions& options) : options_(options) {
  RLFT_CHECK(options.dim > 0 && options.dim % 2 == 0, "RoPE width must be even and positive, got {}", options.dim);
  const std::string& type = options.scaling.type;
  if (type == "default") {
    inv_freq_ = 1.0 / pos_freqs(options.theta, options.dim);
  } else if (type == "linear") {
    inv_freq_ = 1.0 / pos_freqs(options.theta, options.dim) / options.scaling.factor;
  } else if (type == "yarn") {
    inv_freq_ = yarn_inv_freq(options, &attention_scaling_);
  } else if (type == "llama3") {
    inv_freq_ = llama3_inv_freq(options);
  } else {
    throw Error(
        fmt::format("rope_scaling type '{}' is not supported: known types are default, linear, yarn, llama3", type));
  }
  inv_freq_ = inv_freq_.to(at::kFloat).contiguous();
}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding::cos_sin(const at::Tensor& positions, at::ScalarType dtype) const {
  const auto inv = inv_freq_.to(positions.device());
  const auto freqs = positions.clamp_min(0).to(at::kFloat).unsqueeze(-1) * inv;  // [B, T, dim/2]
  const auto emb = at::cat({freqs, freqs}, -1).unsqueeze(1);                     // [B, 1, T, dim]
  auto cos = emb.cos();
  auto sin = emb.sin();
  if (attention_scaling_ != 1.0) {
    cos = cos * attention_scaling_;
    sin = sin * attention_scaling_;
  }
  return {cos.to(dtype), sin.to(dtype)};
}

at::Tensor RotaryEmbedding::rotate_inference(const at::Tensor& x, const at::Tensor& positions) const {
  if (x.dim() != 4 || x.size(3) != options_.dim || x.stride(3) != 1 || !small_gemm_takes_operand(x) ||
      !positions.device().is_cpu())
    return {};
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), d = x.size(3), half = d / 2;
  const auto pos = positions.to(at::kLong).contiguous();
  auto out = at::empty({B, H, T, d}, x.options());
  const float* in = x.data_ptr<float>();
  const float* inv = inv_freq_.data_ptr<float>();
  const int64_t* p = pos.data_ptr<int64_t>();
  float* o = out.data_ptr<float>();
  const bool interleaved = options_.interleaved;
  const float scale = static_cast<float>(attention_scaling_);
  std::vector<float> c(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const float at_pos = static_cast<float>(std::max<int64_t>(p[b * T + t], 0));
      for (int64_t i = 0; i < half; ++i) {
        const float f = at_pos * inv[i];
        c[static_cast<size_t>(i)] = std::cos(f) * scale;
        sn[static_cast<size_t>(i)] = std::sin(f) * scale;
      }
      for (int64_t h = 0; h < H; ++h) {
        const float* src = in + b * x.stride(0) + t * x.stride(1) + h * x.stride(2);
        float* dst = o + ((b * H + h) * T + t) * d;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = interleaved ? src[2 * i] : src[i];
          const float x2 = interleaved ? src[2 * i + 1] : src[i + half];
          dst[i] = x1 * c[static_cast<size_t>(i)] + (-x2) * sn[static_cast<size_t>(i)];
          dst[i + half] = x2 * c[static_cast<size_t>(i)] + x1 * sn[static_cast<size_t>(i)];
        }
      }
    }
  return out;
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, bool interleaved) {
  const int64_t dim = x.size(-1);
  at::Tensor y = x;
  if (interleaved) {
    auto sizes = x.sizes().vec();
    sizes.back() = dim / 2;
    sizes.push_back(2);
    y = x.reshape(sizes).transpose(-1, -2).reshape(x.sizes());
  }
  const auto halves = y.chunk(2, -1);
  const auto rotated = at::cat({-halves[1], halves[0]}, -1);
  return y * cos + rotated * sin;
}

}  // namespace rlft::policy
