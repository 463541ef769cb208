#pragma once
// KV cache for incremental decoding. One LayerKvCache per decoder layer holds that layer's
// cached tensors (GQA: keys and values [B, H_kv, S, d]; MLA: the normalised latent c^KV
// [B, S, d_c] and the rotated RoPE key k^R [B, S, d_R]) and the position of every slot,
// [B, S] int64, -1 for an empty slot (left padding, evicted). Attention masks are built
// from positions, so left padding, packed rows and sliding windows need no other state.
//
// Capacity grows by doubling, so appending one token is amortised O(1) copies. Under a
// sliding window (W, S_sink sinks) a layer's cache is bounded: once it holds 2·(W + S_sink)
// slots (at least 64), slots that no later query can see (position >= S_sink and
// <= next position - W) are dropped, so it never holds more than 2·(W + S_sink) + T_new.
//
// Rows have a capacity too (continuous batching): select_rows with an index that moves only
// finished rows' places (a row j keeps its place or takes a row from past the new end)
// copies just those rows in place, and append_rows copies only the joining rows while the
// capacity lasts; other indices (fan-out, beams) copy the cache.
//
// The cache is for inference (rollout, `rlft model logits --step`); training runs without
// one. Legend: B rows, S cached slots, T tokens of this call.

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace rlft::policy {

class LayerKvCache {
 public:
  /// Appends this call's tensors (`values[i]` has its slot axis at `slot_dims[i]`, length T)
  /// and their positions [B, T]; returns every cached tensor (views of length S).
  std::vector<at::Tensor> append(const std::vector<at::Tensor>& values, const std::vector<int64_t>& slot_dims,
                                 const at::Tensor& positions);
  /// Under a sliding window: drops dead slots when the cache has reached its bound.
  /// `next_positions` [B]: the position the next real token of each row gets.
  void evict(int64_t window, int64_t n_sink_tokens, const at::Tensor& next_positions);
  /// Positions of the cached slots [B, S] (-1 = empty).
  at::Tensor positions() const;
  int64_t length() const { return length_; }
  /// Keeps rows `index` [B'] (int64; repeats allowed): beam reordering, one prompt to G rows.
  /// In place, copying only the rows that move, when every index[j] is j or at least B'.
  void select_rows(const at::Tensor& index);
  /// Empties the slots of row b at positions >= from[b] ([B] int64): speculative decoding's
  /// rejected drafts. Trailing slots empty in every row are given back.
  void forget(const at::Tensor& from);
  /// Appends `other`'s rows after these (continuous batching); the shorter side's rows get
  /// empty slots up to the longer length.
  void append_rows(const LayerKvCache& other);
  int64_t bytes() const;
  bool empty() const { return buffers_.empty(); }

 private:
  void reserve(int64_t rows, int64_t slots);
  at::Tensor live(size_t i) const;   // buffers_[i]'s first rows_ rows
  std::vector<at::Tensor> buffers_;  // [row capacity, ...] with a slot capacity along each slot axis
  std::vector<int64_t> slot_dims_;
  at::Tensor positions_;  // [row capacity, slot capacity] int64; -1 past length_ in live rows
  int64_t rows_ = 0;      // B
  int64_t length_ = 0;
};

class KvCache {
 public:
  /// `n_layers`: decoder layers (the trunk; MTP layers are not cached). `batch_size`: B.
  KvCache(int64_t n_layers, int64_t batch_size, at::Device device = at::kCPU);
  LayerKvCache& layer(int64_t index);
  int64_t n_layers() const { return static_cast<int64_t>(layers_.size()); }
  int64_t batch_size() const { return batch_size_; }
  /// The position the next real token of each row gets [B] int64 (= real tokens seen).
  const at::Tensor& next_positions() const { return next_positions_; }
  /// Called by the model after a forward: advances each row by its real tokens.
  void advance(const at::Tensor& valid);  ///< valid [B, T] bool
  /// Keeps rows `index` in every layer (see LayerKvCache::select_rows).
  void select_rows(const at::Tensor& index);
  /// Forgets every token of row b at positions >= from[b] [B] in every layer, so the row
  /// continues at from[b] (LayerKvCache::forget).
  void forget(const at::Tensor& from);
  /// Appends `other`'s rows (same layers) after these in every layer.
  void append_rows(const KvCache& other);
  /// Slots cached in layer 0 (all layers without a window hold the same).
  int64_t length() const;
  /// Bytes held by all layers.
  int64_t bytes() const;

 private:
  std::vector<LayerKvCache> layers_;
  int64_t batch_size_;
  at::Tensor next_positions_;
};

}  // namespace rlft::policy
