#pragma once
// The random numbers of data/: a SplitMix64 stream per (seed, purpose). Written out rather
// than taken from <random> because the standard distributions differ between standard
// libraries, and a dataset split or a generated task must be the same on every machine.

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace rlft::data {

class DataRng {
 public:
  /// A stream for `seed` and a purpose ("split", "shuffle", "countdown" …): equal seeds and
  /// purposes give equal streams; different purposes give independent ones.
  DataRng(uint64_t seed, std::string_view purpose) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a of the purpose, mixed with the seed
    for (unsigned char c : purpose) h = (h ^ c) * 1099511628211ull;
    state_ = seed ^ h;
    next();
  }

  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n), n > 0, without modulo bias.
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next();
    while (x >= limit);
    return x % n;
  }
  /// Uniform in [lo, hi] (inclusive), lo <= hi.
  int64_t uniform(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
  }
  /// Fisher–Yates, from the back.
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

 private:
  uint64_t state_;
};

}  // namespace rlft::data
