#include "rl/grad_sync.h"

#include <chrono>

namespace rlft::rl {

GradientSync::GradientSync(dist::Context& context, std::vector<at::Tensor> params, double bucket_mb)
    : context_(context),
      params_(std::move(params)),
      bucket_bytes_(std::max<int64_t>(1, static_cast<int64_t>(bucket_mb * 1024.0 * 1024.0))) {}

GradientSyncReport GradientSync::sync() {
  GradientSyncReport report;
  if (context_.world_size() == 1 || params_.empty()) return report;
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t n = static_cast<int64_t>(params_.size());
  const auto device = params_.front().device();

  // Which parameters got a gradient on any rank.
  at::Tensor has = at::zeros({n}, at::TensorOptions().dtype(at::kFloat));
  for (int64_t i = 0; i < n; ++i)
    if (params_[static_cast<size_t>(i)].grad().defined()) has[i] = 1.0f;
  std::vector<at::Tensor> flags{has.to(device)};
  context_.all_reduce_sum(flags);
  report.wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto any = flags[0].to(at::kCPU);
  const float* any_p = any.data_ptr<float>();

  // Buckets of flat gradients in reverse parameter order (one dtype per bucket).
  struct Bucket {
    std::vector<int64_t> members;
    at::Tensor flat;
  };
  std::vector<Bucket> buckets;
  int64_t bytes_in_last = 0;
  for (int64_t i = n - 1; i >= 0; --i) {
    if (any_p[i] == 0.0f) continue;
    const auto& p = params_[static_cast<size_t>(i)];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    const bool fits = !buckets.empty() && bytes_in_last + bytes <= bucket_bytes_ &&
                      params_[static_cast<size_t>(buckets.back().members.front())].scalar_type() == p.scalar_type();
    if (!fits) {
      buckets.emplace_back();
      bytes_in_last = 0;
    }
    buckets.back().members.push_back(i);
    bytes_in_last += bytes;
    report.bytes += bytes;
  }
  std::vector<at::Tensor> flats;
  for (auto& b : buckets) {
    std::vector<at::Tensor> parts;
    for (const int64_t i : b.members) {
      const auto& p = params_[static_cast<size_t>(i)];
      parts.push_back(p.grad().defined() ? p.grad().reshape({-1}) : at::zeros({p.numel()}, p.options()));
    }
    b.flat = at::cat(parts);
    flats.push_back(b.flat);
  }
  context_.all_reduce_sum(flats);
  for (size_t k = 0; k < buckets.size(); ++k) {
    int64_t offset = 0;
    for (const int64_t i : buckets[k].members) {
      auto& p = params_[static_cast<size_t>(i)];
      const auto slice = flats[k].narrow(0, offset, p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(slice);
      else
        p.mutable_grad() = slice.clone();
      offset += p.numel();
    }
  }
  report.buckets = static_cast<int64_t>(buckets.size());
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace rlft::rl
