#include "reward/rules/length.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "core/config.h"
#include "core/error.h"

namespace rlft::reward {

LengthOptions LengthOptions::from_config(const ConfigView& c) {
  LengthOptions o;
  o.mode = c.get<std::string>("mode", o.mode);
  o.unit = c.get<std::string>("unit", o.unit);
  if (o.mode == "overlong") {
    o.max_length = c.get<int64_t>("max_length", o.max_length);
    o.cache_length = c.get<int64_t>("cache_length", o.cache_length);
  } else {
    o.target_length = c.get<int64_t>("target_length", o.target_length);
    o.tolerance = c.get<int64_t>("tolerance", o.tolerance);
    o.scale = c.get<int64_t>("scale", o.scale);
    o.direction = c.get<std::string>("direction", o.direction);
  }
  return o;
}

void LengthOptions::validate() const {
  RLFT_CHECK_OPTION(mode == "overlong" || mode == "target", "mode", mode, "must be overlong or target");
  RLFT_CHECK_OPTION(unit == "tokens" || unit == "chars", "unit", unit, "must be tokens or chars");
  if (mode == "overlong") {
    RLFT_CHECK_OPTION(max_length >= 1, "max_length", max_length, "must be >= 1");
    RLFT_CHECK_OPTION(cache_length >= 1 && cache_length <= max_length, "cache_length", cache_length,
                      "must be in [1, max_length]");
  } else {
    RLFT_CHECK_OPTION(target_length >= 0, "target_length", target_length, "must be >= 0");
    RLFT_CHECK_OPTION(tolerance >= 0, "tolerance", tolerance, "must be >= 0");
    RLFT_CHECK_OPTION(scale >= 1, "scale", scale, "must be >= 1");
    RLFT_CHECK_OPTION(direction == "both" || direction == "longer" || direction == "shorter", "direction", direction,
                      "must be both, longer or shorter");
  }
}

double soft_overlong_penalty(int64_t length, int64_t max_length, int64_t cache_length) {
  const int64_t soft_start = max_length - cache_length;
  if (length <= soft_start) return 0.0;
  if (length <= max_length) return static_cast<double>(soft_start - length) / static_cast<double>(cache_length);
  return -1.0;
}

double target_length_penalty(int64_t length, const LengthOptions& o) {
  int64_t d = length - o.target_length;
  if (o.direction == "longer")
    d = std::max<int64_t>(d, 0);
  else if (o.direction == "shorter")
    d = std::max<int64_t>(-d, 0);
  else
    d = std::llabs(d);
  const int64_t excess = std::max<int64_t>(0, d - o.tolerance);
  return -std::min(1.0, static_cast<double>(excess) / static_cast<double>(o.scale));
}

int64_t count_chars(std::string_view text) {
  int64_t n = 0;
  for (char c : text)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

LengthReward::LengthReward(std::string name, LengthOptions options)
    : RewardFn(std::move(name)), o_(std::move(options)) {}

std::vector<double> LengthReward::score(const ScoreBatch& batch) {
  const bool tokens = o_.unit == "tokens";
  RLFT_CHECK(!tokens || batch.completion_tokens.size() == batch.size() || batch.size() == 0,
             "reward '{}' counts tokens but the batch has no completion token counts (use unit: chars, or pass "
             "ScoreBatch::completion_tokens)",
             name());
  std::vector<double> out(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const int64_t length = tokens ? batch.completion_tokens[i] : count_chars(batch.completions[i]);
    out[i] = o_.mode == "overlong" ? soft_overlong_penalty(length, o_.max_length, o_.cache_length)
                                   : target_length_penalty(length, o_);
  }
  return out;
}

std::unique_ptr<RewardFn> make_length_reward(const std::string& name, const ConfigView& section, const RewardContext&) {
  return std::make_unique<LengthReward>(name, read_options<LengthOptions>(section));
}

}  // namespace rlft::reward
