#include "policy/kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace rlft::policy {

namespace {
constexpr int64_t kMinCapacity = 16;
}

void LayerKvCache::reserve(int64_t slots) {
  const int64_t capacity = positions_.defined() ? positions_.size(1) : 0;
  if (slots <= capacity) return;
  const int64_t grown = std::max({slots, 2 * capacity, kMinCapacity});
  for (size_t i = 0; i < buffers_.size(); ++i) {
    auto sizes = buffers_[i].sizes().vec();
    sizes[slot_dims_[i]] = grown;
    auto fresh = at::zeros(sizes, buffers_[i].options());
    if (length_ > 0) fresh.narrow(slot_dims_[i], 0, length_).copy_(buffers_[i].narrow(slot_dims_[i], 0, length_));
    buffers_[i] = fresh;
  }
  auto fresh_pos = at::full({positions_.size(0), grown}, -1, positions_.options());
  if (length_ > 0) fresh_pos.narrow(1, 0, length_).copy_(positions_.narrow(1, 0, length_));
  positions_ = fresh_pos;
}

std::vector<at::Tensor> LayerKvCache::append(const std::vector<at::Tensor>& values,
                                             const std::vector<int64_t>& slot_dims, const at::Tensor& positions) {
  RLFT_CHECK(values.size() == slot_dims.size(), "KV cache: {} tensors but {} slot axes", values.size(),
             slot_dims.size());
  const int64_t n_new = positions.size(1);
  if (buffers_.empty()) {
    slot_dims_ = slot_dims;
    for (size_t i = 0; i < values.size(); ++i) {
      auto sizes = values[i].sizes().vec();
      sizes[slot_dims[i]] = 0;
      buffers_.push_back(at::zeros(sizes, values[i].options()));
    }
    positions_ = at::full({positions.size(0), 0}, -1, positions.options().dtype(at::kLong));
  }
  RLFT_CHECK(values.size() == buffers_.size() && slot_dims == slot_dims_,
             "KV cache: a layer was called with a different set of tensors than before");
  RLFT_CHECK(positions.size(0) == positions_.size(0), "KV cache holds {} rows, the call has {}", positions_.size(0),
             positions.size(0));
  reserve(length_ + n_new);
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < values.size(); ++i) {
    const int64_t d = slot_dims_[i];
    RLFT_CHECK(values[i].size(d) == n_new, "KV cache: tensor {} has {} slots, positions {}", i, values[i].size(d),
               n_new);
    buffers_[i].narrow(d, length_, n_new).copy_(values[i]);
    out.push_back(buffers_[i].narrow(d, 0, length_ + n_new));
  }
  positions_.narrow(1, length_, n_new).copy_(positions);
  length_ += n_new;
  return out;
}

void LayerKvCache::evict(int64_t window, int64_t n_sink_tokens, const at::Tensor& next_positions) {
  if (window <= 0 || length_ == 0) return;
  const int64_t bound = std::max<int64_t>(2 * (window + n_sink_tokens), 64);
  if (length_ < bound) return;
  const auto pos = positions_.narrow(1, 0, length_);               // [B, S]
  const auto next = next_positions.to(pos.device()).unsqueeze(1);  // [B, 1]
  const auto live = (pos >= 0).logical_and((pos < n_sink_tokens).logical_or(pos > next - window));
  // Stable sort puts dead slots first and keeps the live ones in order; keep the last L.
  const auto order = std::get<1>(live.to(at::kInt).sort(/*stable=*/true, /*dim=*/1, /*descending=*/false));
  const int64_t keep = live.sum(1).max().item<int64_t>();
  const auto index = order.narrow(1, length_ - keep, keep);  // [B, L]
  for (size_t i = 0; i < buffers_.size(); ++i) {
    const int64_t d = slot_dims_[i];
    const auto buf = buffers_[i].narrow(d, 0, length_);
    std::vector<int64_t> view(buf.dim(), 1);
    view[0] = index.size(0);
    view[d] = keep;
    const auto idx = index.reshape(view).expand([&] {
      auto s = buf.sizes().vec();
      s[d] = keep;
      return s;
    }());
    buffers_[i].narrow(d, 0, keep).copy_(buf.gather(d, idx));
  }
  const auto kept_pos = pos.gather(1, index).masked_fill(live.gather(1, index).logical_not(), -1);
  positions_.narrow(1, 0, keep).copy_(kept_pos);
  positions_.narrow(1, keep, length_ - keep).fill_(-1);
  length_ = keep;
}

at::Tensor LayerKvCache::positions() const {
  if (!positions_.defined()) return at::Tensor();
  return positions_.narrow(1, 0, length_);
}

void LayerKvCache::select_rows(const at::Tensor& index) {
  if (buffers_.empty()) return;
  for (auto& b : buffers_) b = b.index_select(0, index.to(b.device()));
  positions_ = positions_.index_select(0, index.to(positions_.device()));
}

void LayerKvCache::forget(const at::Tensor& from) {
  if (length_ == 0) return;
  auto pos = positions_.narrow(1, 0, length_);  // [B, S]
  pos.masked_fill_(pos >= from.to(pos.device()).unsqueeze(1), -1);
  const auto used = (pos >= 0).any(0).nonzero();  // slots some row still holds
  length_ = used.numel() == 0 ? 0 : used.max().item<int64_t>() + 1;
}

void LayerKvCache::append_rows(const LayerKvCache& other) {
  RLFT_CHECK(!buffers_.empty() && !other.buffers_.empty(),
             "KV cache: rows can only be appended between layers that both hold tokens");
  const int64_t rows_a = positions_.size(0), rows_b = other.positions_.size(0);
  RLFT_CHECK(buffers_.size() == other.buffers_.size() && slot_dims_ == other.slot_dims_,
             "KV cache: appended rows come from a layer with a different set of tensors");
  const int64_t length = std::max(length_, other.length_);
  const int64_t capacity = std::max({2 * length, kMinCapacity});
  for (size_t i = 0; i < buffers_.size(); ++i) {
    const int64_t d = slot_dims_[i];
    auto sizes = buffers_[i].sizes().vec();
    sizes[0] = rows_a + rows_b;
    sizes[d] = capacity;
    auto fresh = at::zeros(sizes, buffers_[i].options());
    fresh.narrow(0, 0, rows_a).narrow(d, 0, length_).copy_(buffers_[i].narrow(d, 0, length_));
    fresh.narrow(0, rows_a, rows_b).narrow(d, 0, other.length_).copy_(other.buffers_[i].narrow(d, 0, other.length_));
    buffers_[i] = fresh;
  }
  auto pos = at::full({rows_a + rows_b, capacity}, -1, positions_.options());
  pos.narrow(0, 0, rows_a).narrow(1, 0, length_).copy_(positions_.narrow(1, 0, length_));
  pos.narrow(0, rows_a, rows_b).narrow(1, 0, other.length_).copy_(other.positions_.narrow(1, 0, other.length_));
  positions_ = pos;
  length_ = length;
}

int64_t LayerKvCache::bytes() const {
  int64_t n = 0;
  for (const auto& b : buffers_) n += b.numel() * static_cast<int64_t>(b.element_size());
  if (positions_.defined()) n += positions_.numel() * 8;
  return n;
}

KvCache::KvCache(int64_t n_layers, int64_t batch_size, at::Device device)
    : layers_(static_cast<size_t>(n_layers)),
      batch_size_(batch_size),
      next_positions_(at::zeros({batch_size}, at::TensorOptions().dtype(at::kLong).device(device))) {}

LayerKvCache& KvCache::layer(int64_t index) {
  RLFT_CHECK(index >= 0 && index < n_layers(), "KV cache has {} layers, asked for layer {}", n_layers(), index);
  return layers_[static_cast<size_t>(index)];
}

void KvCache::advance(const at::Tensor& valid) {
  next_positions_ = next_positions_ + valid.to(at::kLong).sum(1).to(next_positions_.device());
}

void KvCache::select_rows(const at::Tensor& index) {
  for (auto& l : layers_) l.select_rows(index);
  next_positions_ = next_positions_.index_select(0, index.to(next_positions_.device()));
  batch_size_ = index.size(0);
}

void KvCache::forget(const at::Tensor& from) {
  for (auto& l : layers_) l.forget(from);
  next_positions_ = at::minimum(next_positions_, from.to(next_positions_.device()));
}

void KvCache::append_rows(const KvCache& other) {
  RLFT_CHECK(other.n_layers() == n_layers(), "KV cache: appending rows of {} layers to {}", other.n_layers(),
             n_layers());
  for (size_t i = 0; i < layers_.size(); ++i) layers_[i].append_rows(other.layers_[i]);
  next_positions_ = at::cat({next_positions_, other.next_positions_.to(next_positions_.device())});
  batch_size_ += other.batch_size_;
}

int64_t KvCache::length() const {
  return layers_.empty() ? 0 : layers_.front().length();
}

int64_t KvCache::bytes() const {
  int64_t n = 0;
  for (const auto& l : layers_) n += l.bytes();
  return n;
}

}  // namespace rlft::policy
