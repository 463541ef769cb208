#include "policy/kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace rlft::policy {

namespace {
constexpr int64_t kMinCapacity = 16;
}

at::Tensor LayerKvCache::live(size_t i) const {
  return buffers_[i].narrow(0, 0, rows_);
}

// Grows the row and slot capacities to at least `rows` and `slots` (slots by doubling),
// keeping the live rows' first length_ slots.
void LayerKvCache::reserve(int64_t rows, int64_t slots) {
  const int64_t row_capacity = positions_.size(0), capacity = positions_.size(1);
  if (rows <= row_capacity && slots <= capacity) return;
  const int64_t grown_rows = std::max(rows, row_capacity);
  const int64_t grown = slots <= capacity ? capacity : std::max({slots, 2 * capacity, kMinCapacity});
  for (size_t i = 0; i < buffers_.size(); ++i) {
    const int64_t d = slot_dims_[i];
    auto sizes = buffers_[i].sizes().vec();
    sizes[0] = grown_rows;
    sizes[d] = grown;
    auto fresh = at::zeros(sizes, buffers_[i].options());
    if (length_ > 0 && rows_ > 0) fresh.narrow(0, 0, rows_).narrow(d, 0, length_).copy_(live(i).narrow(d, 0, length_));
    buffers_[i] = fresh;
  }
  auto fresh_pos = at::full({grown_rows, grown}, -1, positions_.options());
  if (length_ > 0 && rows_ > 0)
    fresh_pos.narrow(0, 0, rows_).narrow(1, 0, length_).copy_(positions_.narrow(0, 0, rows_).narrow(1, 0, length_));
  positions_ = fresh_pos;
}

std::vector<at::Tensor> LayerKvCache::append(const std::vector<at::Tensor>& values,
                                             const std::vector<int64_t>& slot_dims, const at::Tensor& positions) {
  RLFT_CHECK(values.size() == slot_dims.size(), "KV cache: {} tensors but {} slot axes", values.size(),
             slot_dims.size());
  const int64_t n_new = positions.size(1);
  if (buffers_.empty()) {
    slot_dims_ = slot_dims;
    rows_ = positions.size(0);
    for (size_t i = 0; i < values.size(); ++i) {
      auto sizes = values[i].sizes().vec();
      sizes[slot_dims[i]] = 0;
      buffers_.push_back(at::zeros(sizes, values[i].options()));
    }
    positions_ = at::full({rows_, 0}, -1, positions.options().dtype(at::kLong));
  }
  RLFT_CHECK(values.size() == buffers_.size() && slot_dims == slot_dims_,
             "KV cache: a layer was called with a different set of tensors than before");
  RLFT_CHECK(positions.size(0) == rows_, "KV cache holds {} rows, the call has {}", rows_, positions.size(0));
  reserve(rows_, length_ + n_new);
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < values.size(); ++i) {
    const int64_t d = slot_dims_[i];
    RLFT_CHECK(values[i].size(d) == n_new, "KV cache: tensor {} has {} slots, positions {}", i, values[i].size(d),
               n_new);
    const auto buf = live(i);
    buf.narrow(d, length_, n_new).copy_(values[i]);
    out.push_back(buf.narrow(d, 0, length_ + n_new));
  }
  positions_.narrow(0, 0, rows_).narrow(1, length_, n_new).copy_(positions);
  length_ += n_new;
  return out;
}

void LayerKvCache::evict(int64_t window, int64_t n_sink_tokens, const at::Tensor& next_positions) {
  if (window <= 0 || length_ == 0) return;
  const int64_t bound = std::max<int64_t>(2 * (window + n_sink_tokens), 64);
  if (length_ < bound) return;
  const auto pos = positions();                                    // [B, S]
  const auto next = next_positions.to(pos.device()).unsqueeze(1);  // [B, 1]
  const auto live_slots = (pos >= 0).logical_and((pos < n_sink_tokens).logical_or(pos > next - window));
  // Stable sort puts dead slots first and keeps the live ones in order; keep the last L.
  const auto order = std::get<1>(live_slots.to(at::kInt).sort(/*stable=*/true, /*dim=*/1, /*descending=*/false));
  const int64_t keep = live_slots.sum(1).max().item<int64_t>();
  const auto index = order.narrow(1, length_ - keep, keep);  // [B, L]
  for (size_t i = 0; i < buffers_.size(); ++i) {
    const int64_t d = slot_dims_[i];
    const auto buf = live(i).narrow(d, 0, length_);
    std::vector<int64_t> view(buf.dim(), 1);
    view[0] = index.size(0);
    view[d] = keep;
    const auto idx = index.reshape(view).expand([&] {
      auto s = buf.sizes().vec();
      s[d] = keep;
      return s;
    }());
    live(i).narrow(d, 0, keep).copy_(buf.gather(d, idx));
  }
  const auto kept_pos = pos.gather(1, index).masked_fill(live_slots.gather(1, index).logical_not(), -1);
  auto rows_pos = positions_.narrow(0, 0, rows_);
  rows_pos.narrow(1, 0, keep).copy_(kept_pos);
  rows_pos.narrow(1, keep, length_ - keep).fill_(-1);
  length_ = keep;
}

at::Tensor LayerKvCache::positions() const {
  if (!positions_.defined()) return at::Tensor();
  return positions_.narrow(0, 0, rows_).narrow(1, 0, length_);
}

void LayerKvCache::select_rows(const at::Tensor& index) {
  if (buffers_.empty()) return;
  const auto idx = index.to(at::kCPU, at::kLong).contiguous();
  const int64_t n = idx.size(0);
  const int64_t* at = idx.data_ptr<int64_t>();
  // In place when no row that moves is read after it was written: index[j] is j or >= n.
  bool in_place = n <= positions_.size(0);
  for (int64_t j = 0; j < n && in_place; ++j) in_place = at[j] == j || (at[j] >= n && at[j] < rows_);
  if (in_place) {
    for (int64_t j = 0; j < n; ++j) {
      if (at[j] == j) continue;
      for (auto& b : buffers_) b[j].copy_(b[at[j]]);
      positions_[j].copy_(positions_[at[j]]);
    }
    rows_ = n;
    return;
  }
  for (auto& b : buffers_) b = b.narrow(0, 0, rows_).index_select(0, index.to(b.device()));
  positions_ = positions_.narrow(0, 0, rows_).index_select(0, index.to(positions_.device()));
  rows_ = n;
}

void LayerKvCache::forget(const at::Tensor& from) {
  if (length_ == 0) return;
  auto pos = positions();  // [B, S]
  pos.masked_fill_(pos >= from.to(pos.device()).unsqueeze(1), -1);
  const auto used = (pos >= 0).any(0).nonzero();  // slots some row still holds
  length_ = used.numel() == 0 ? 0 : used.max().item<int64_t>() + 1;
}

void LayerKvCache::append_rows(const LayerKvCache& other) {
  RLFT_CHECK(!buffers_.empty() && !other.buffers_.empty(),
             "KV cache: rows can only be appended between layers that both hold tokens");
  RLFT_CHECK(buffers_.size() == other.buffers_.size() && slot_dims_ == other.slot_dims_,
             "KV cache: appended rows come from a layer with a different set of tensors");
  const int64_t n = other.rows_;
  const int64_t length = std::max(length_, other.length_);
  // Room for the joining rows (row capacity doubles) and the longer length.
  reserve(rows_ + n > positions_.size(0) ? std::max(rows_ + n, 2 * positions_.size(0)) : rows_, length);
  for (size_t i = 0; i < buffers_.size(); ++i) {
    const int64_t d = slot_dims_[i];
    buffers_[i].narrow(0, rows_, n).narrow(d, 0, other.length_).copy_(other.live(i).narrow(d, 0, other.length_));
  }
  auto joined = positions_.narrow(0, rows_, n);
  joined.narrow(1, 0, other.length_).copy_(other.positions());
  joined.narrow(1, other.length_, positions_.size(1) - other.length_).fill_(-1);
  rows_ += n;
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
