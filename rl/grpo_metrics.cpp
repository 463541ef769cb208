// GRPO's last stage: the step's metrics and stored rollouts, over every rank (rl/grpo_step.h).
#include <algorithm>
#include <tuple>

#include "rl/grpo_step.h"
#include "rl/rank_figures.h"

namespace rlft::rl {

Metrics step_metrics(const GrpoSetup& setup, const StepRecord& step) {
  const auto& g = setup.options;
  const auto& kept = step.collected.kept;
  const auto& u = step.update;
  auto& d = setup.dist;
  Metrics m;
  const auto all_scores = all_gather_scores(d, kept.scores);
  for (const auto& kv : all_scores.summary()) m.push_back(kv);
  int64_t correct = 0;
  for (double v : all_scores.parts[setup.accuracy_part]) correct += v >= setup.accuracy_threshold;

  double truncated = 0, response_tokens = 0, response_max = 0;
  for (const auto& group : kept.groups)
    for (const auto& s : group.samples) {
      truncated += s.finish == rollout::FinishReason::kLength;
      response_tokens += static_cast<double>(s.tokens.size());
      response_max = std::max(response_max, static_cast<double>(s.tokens.size()));
    }
  double train_tokens = 0;
  for (const auto& q : step.batch.sequences) train_tokens += static_cast<double>(q.prompt.size() + q.completion.size());

  RankFigures sums;
  sums.add("loss", u.loss);
  sums.add("policy_loss", u.policy_loss);
  sums.add("kl", u.kl);
  sums.add("entropy", u.entropy);
  sums.add("clip_fraction", u.clip_fraction);
  sums.add("ratio_mean", u.ratio_mean);
  sums.add("approx_kl_old", u.approx_kl_old);
  sums.add("is_capped_fraction", u.is_capped);
  sums.add("reward_kl", step.batch.reward_kl.sum);
  sums.add("reward_kl_tokens", step.batch.reward_kl.tokens);
  sums.add("zero_variance_groups", static_cast<double>(step.collected.zero_variance_groups));
  sums.add("drawn_groups", static_cast<double>(step.collected.drawn_groups));
  sums.add("response_tokens", response_tokens);
  sums.add("truncated", truncated);
  sums.add("prefill_tokens", static_cast<double>(kept.generate.prefill_tokens));
  sums.add("decode_tokens", static_cast<double>(kept.generate.decode_tokens));
  sums.add("drafted_tokens", static_cast<double>(kept.generate.drafted_tokens));
  sums.add("accepted_tokens", static_cast<double>(kept.generate.accepted_tokens));
  sums.add("train_tokens", train_tokens);
  sums.sum_over(d);
  RankFigures maxes;
  maxes.add("response_max", response_max);
  maxes.add("rollout_seconds", kept.rollout_seconds);
  maxes.max_over(d);

  const double n = static_cast<double>(all_scores.size());
  const double n_opt = static_cast<double>(u.optimizer_steps);
  const auto a = step.batch.global_advantages.to(at::kDouble);
  const double kl = g.kl_in_reward ? sums["reward_kl"] / std::max(sums["reward_kl_tokens"], 1.0) : sums["kl"] / n_opt;
  m.insert(m.end(),
           {{"accuracy", static_cast<double>(correct) / n},
            {"advantage/mean", a.mean().item<double>()},
            {"advantage/std", a.numel() > 1 ? a.std().item<double>() : 0.0},
            {"advantage/abs_mean", a.abs().mean().item<double>()},
            {"zero_variance_frac", sums["zero_variance_groups"] / sums["drawn_groups"]},
            {"groups_drawn", sums["drawn_groups"]},
            {"loss", sums["loss"] / n_opt},
            {"policy_loss", sums["policy_loss"] / n_opt},
            {"kl", kl},
            {"entropy", sums["entropy"] / n_opt},
            {"clip_fraction", sums["clip_fraction"] / n_opt},
            {"ratio_mean", sums["ratio_mean"] / n_opt},
            {"approx_kl_old", sums["approx_kl_old"] / n_opt},
            {"is_capped_fraction", sums["is_capped_fraction"] / n_opt},
            {"grad_norm", u.grad_norm / n_opt},
            {"lr", u.lr},
            {"loss_scale", u.loss_scale},
            {"skipped_steps", static_cast<double>(step.skipped_steps)},
            {"response_length/mean", sums["response_tokens"] / n},
            {"response_length/max", maxes["response_max"]},
            {"truncated_frac", sums["truncated"] / n},
            {"time/rollout", kept.rollout_seconds},
            {"time/reward", kept.reward_seconds},
            {"time/train", step.train_seconds},
            {"time/sync", 0.0},
            {"time/allreduce", u.allreduce_seconds},
            {"time/allreduce_wait", u.allreduce_wait_seconds},
            {"allreduce/megabytes", u.allreduce_bytes / 1e6},
            {"rollout/prefill_tokens", sums["prefill_tokens"]},
            {"rollout/decode_tokens_per_s", sums["decode_tokens"] / std::max(maxes["rollout_seconds"], 1e-9)}});
  if (sums["drafted_tokens"] > 0)  // speculative rollout: the share of drafted tokens kept
    m.emplace_back("rollout/draft_acceptance", sums["accepted_tokens"] / sums["drafted_tokens"]);
  u.loads.append_metrics(m);
  const double step_seconds = seconds_since(step.started);
  m.emplace_back("tokens_per_s", (sums["train_tokens"] + sums["decode_tokens"]) / std::max(step_seconds, 1e-9));
  m.emplace_back("time/step", step_seconds);
  return m;
}

std::vector<data::RolloutRecord> step_rollouts(const GrpoSetup& setup, const StepRecord& step, int64_t step_index,
                                               const std::function<std::string(const data::Example&)>& prompt_text) {
  const auto& kept = step.collected.kept;
  const int64_t G = setup.options.group_size;
  std::vector<data::RolloutRecord> records;
  for (size_t p = 0; p < kept.groups.size(); ++p) {
    const int64_t global = setup.layout.global(static_cast<int64_t>(p));
    if (global >= setup.options.log_rollouts) continue;
    for (int64_t k = 0; k < G; ++k) {
      const size_t i = p * static_cast<size_t>(G) + static_cast<size_t>(k);  // row p·G + k
      const auto& sample = kept.groups[p].samples[static_cast<size_t>(k)];
      data::RolloutRecord r;
      r.step = step_index;
      r.prompt_index = global;
      r.sample_index = k;
      r.prompt = prompt_text(*kept.examples[p]);
      r.completion = sample.text;
      r.reward = kept.scores.total[i];
      r.parts = kept.scores.parts_of(i);
      r.advantage = step.batch.advantages[static_cast<int64_t>(i)].item<double>();
      r.finish_reason = rollout::finish_reason_name(sample.finish);
      r.policy_version = step_index - 1;
      records.push_back(std::move(r));
    }
  }
  if (setup.dist.world_size() == 1) return records;
  const auto mine = data::rollout_records_to_json(records);
  records.clear();
  for (const auto& text : setup.dist.all_gather_string(mine))
    for (auto& r : data::rollout_records_from_json(text)) records.push_back(std::move(r));
  std::sort(records.begin(), records.end(), [](const data::RolloutRecord& x, const data::RolloutRecord& y) {
    return std::tie(x.prompt_index, x.sample_index) < std::tie(y.prompt_index, y.sample_index);
  });
  return records;
}

}  // namespace rlft::rl
