#include "rl/data_order.h"

#include <fmt/format.h>

#include "core/error.h"
#include "data/dataset.h"

namespace rlft::rl {

int64_t rank_share(const dist::Context& context, int64_t batch, const std::string& key) {
  const int64_t w = context.world_size();
  if (batch % w != 0)
    throw ConfigError(
        fmt::format("{} = {} must be divisible by the world size {} (each rank takes an equal share of "
                    "the global batch)",
                    key, batch, w));
  return batch / w;
}

int64_t EpochOrder::at(int64_t c) {
  const int64_t epoch = c / size_;
  if (epoch != epoch_) {
    order_ = data::epoch_order(size_, seed_, epoch);
    epoch_ = epoch;
  }
  return order_[static_cast<size_t>(c % size_)];
}

}  // namespace rlft::rl
