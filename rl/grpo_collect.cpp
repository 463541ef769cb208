#include "rl/grpo_collect.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"

namespace rlft::rl {

RankGroups::RankGroups(int64_t prompts, int64_t mini_batches, int64_t world, int64_t rank)
    : prompts_(prompts), mini_batches_(mini_batches), world_(world), rank_(rank) {
  if (world > 1 && prompts % (mini_batches * world) != 0)
    throw ConfigError(
        fmt::format("grpo.prompts_per_step = {} must be divisible by grpo.mini_batches × world size = {} × {} (every "
                    "optimizer step takes the same number of whole groups from each rank)",
                    prompts, mini_batches, world));
  run_ = world > 1 ? prompts / (mini_batches * world) : prompts;
}

int64_t RankGroups::global(int64_t local) const {
  if (world_ == 1) return local;
  // local = (mini-batch) · run + (offset in the run); the mini-batch holds P/m global groups,
  // of which rank R's run starts at R · run.
  return (local / run_) * (prompts_ / mini_batches_) + rank_ * run_ + local % run_;
}

bool zero_variance_group(const double* totals, int64_t group_size) {
  return std::all_of(totals, totals + group_size, [&](double v) { return v == totals[0]; });
}

CollectedGroups collect_groups(const RankGroups& layout, const CollectOptions& options, int64_t& cursor,
                               dist::Context& context, const GroupSource& source) {
  const int64_t G = options.group_size, P_local = layout.local_count();
  const int64_t W = context.world_size(), R = context.rank();
  CollectedGroups out;
  auto& kept = out.kept;
  for (int64_t round = 0;; ++round) {
    const int64_t need = P_local - static_cast<int64_t>(kept.groups.size());
    std::vector<int64_t> positions;  // global data positions this rank rolls out this round
    int64_t drawn = 0;               // prompts drawn this round over all ranks
    if (round == 0) {
      for (int64_t i = 0; i < P_local; ++i) positions.push_back(cursor + layout.global(i));
      drawn = layout.global_count();
    } else {
      // Fresh prompts in rank order: rank R's come after the ones ranks 0..R-1 need.
      const auto needs = context.all_gather({static_cast<double>(need)});
      int64_t before = 0;
      for (int64_t r = 0; r < W; ++r) {
        if (r < R) before += static_cast<int64_t>(needs[static_cast<size_t>(r)]);
        drawn += static_cast<int64_t>(needs[static_cast<size_t>(r)]);
      }
      if (drawn == 0) break;
      for (int64_t i = 0; i < need; ++i) positions.push_back(cursor + before + i);
    }
    cursor += drawn;
    const bool last_round = !options.dynamic_sampling || round >= options.max_resample_rounds;
    if (!positions.empty()) {
      auto round_groups = source(positions);
      kept.generate.add_counts(round_groups.generate);
      kept.generate.prefill_seconds += round_groups.generate.prefill_seconds;
      kept.generate.decode_seconds += round_groups.generate.decode_seconds;
      kept.rollout_seconds += round_groups.rollout_seconds;
      kept.reward_seconds += round_groups.reward_seconds;
      const size_t n = round_groups.groups.size();
      out.drawn_groups += static_cast<int64_t>(n);
      std::vector<size_t> keep_rows;  // rows of round_groups.scores, p·G + k
      for (size_t p = 0; p < n; ++p) {
        const bool flat = zero_variance_group(round_groups.scores.total.data() + p * G, G);
        out.zero_variance_groups += flat;
        if (options.dynamic_sampling && flat && !last_round) continue;
        if (static_cast<int64_t>(kept.groups.size()) >= P_local) break;
        kept.groups.push_back(std::move(round_groups.groups[p]));
        kept.examples.push_back(round_groups.examples[p]);
        for (int64_t k = 0; k < G; ++k) keep_rows.push_back(p * G + k);
      }
      kept.scores.append(round_groups.scores.select(keep_rows));
    }
    if (last_round) break;
  }
  return out;
}

}  // namespace rlft::rl
