#pragma once
// The order a trainer reads its data in: the training split's seeded epoch order at global
// positions, and each rank's share of a global batch.

#include <cstdint>
#include <string>
#include <vector>

#include "core/distributed.h"

namespace rlft::rl {

/// The global batch of `batch` rows (a config key, `key`) split over the ranks: the rows each
/// rank takes. Throws ConfigError unless the world size divides it.
int64_t rank_share(const dist::Context& context, int64_t batch, const std::string& key);

/// The training split's seeded epoch order (data::epoch_order per epoch) at global positions:
/// every rank agrees on which example position c holds.
class EpochOrder {
 public:
  EpochOrder(int64_t size, uint64_t seed) : size_(size), seed_(seed) {}
  /// The example index at global position c (epoch c / size).
  int64_t at(int64_t c);

 private:
  int64_t size_;
  uint64_t seed_;
  std::vector<int64_t> order_;
  int64_t epoch_ = -1;
};

}  // namespace rlft::rl
