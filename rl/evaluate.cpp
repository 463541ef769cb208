#include "rl/evaluate.h"

#include <torch/nn/module.h>
#include <torch/utils.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "rl/rank_figures.h"
#include "rollout/generator.h"

namespace rlft::rl {

std::vector<std::pair<std::string, double>> EvalResult::metrics() const {
  std::vector<std::pair<std::string, double>> m = {{"eval/accuracy", accuracy},
                                                   {"eval/reward_mean", reward_mean},
                                                   {"eval/response_length", response_length},
                                                   {"eval/seconds", seconds}};
  if (samples > prompts)
    m.emplace_back(fmt::format("eval/pass@{}", samples / std::max<int64_t>(prompts, 1)), pass_at_k);
  for (const auto& [name, value] : parts) m.emplace_back("eval/" + name, value);
  return m;
}

EvalResult evaluate(Job& job, const std::vector<data::Example>& all, const EvalOptions& o,
                    int64_t default_max_new_tokens, uint64_t seed) {
  RLFT_CHECK(job.spec().rewards, "evaluation needs the run's `rewards:` to score answers");
  const auto t0 = std::chrono::steady_clock::now();
  const size_t n = o.size > 0 ? std::min<size_t>(o.size, all.size()) : all.size();
  EvalResult r;
  if (n == 0) return r;
  auto& rewards = *job.spec().rewards;
  const auto names = rewards.names();
  const size_t acc_part =
      o.accuracy_reward.empty() ? 0 : std::find(names.begin(), names.end(), o.accuracy_reward) - names.begin();

  auto& model = job.model();
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard ng;
  rollout::Generator gen(model);
  rollout::SamplingOptions sampling;
  sampling.temperature = o.temperature;
  rollout::GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens > 0 ? o.max_new_tokens : default_max_new_tokens;
  g.stop_token_ids = {job.eos_id()};
  g.use_model_eos = false;
  g.max_batch_rows = o.batch_rows;
  g.seed = seed;
  g.vocab_limit = job.tok().vocab_size();

  // Each rank answers every W-th prompt; request ids stay the prompt's index, so the samples
  // are those of a single process.
  auto& d = job.dist();
  std::vector<size_t> mine;
  for (size_t i = static_cast<size_t>(d.rank()); i < n; i += static_cast<size_t>(d.world_size())) mine.push_back(i);
  std::vector<rollout::Request> requests;
  for (const size_t i : mine) requests.push_back({job.encode_prompt(all[i]), o.samples, i});
  const auto groups = requests.empty() ? std::vector<rollout::Group>{} : gen.generate(requests, sampling, g);

  reward::ScoreBatch batch;
  double length = 0;
  for (size_t j = 0; j < mine.size(); ++j)
    for (const auto& s : groups[j].samples) {
      batch.add(all[mine[j]], job.decode(s.tokens), static_cast<int64_t>(s.tokens.size()));
      batch.finish_reasons.push_back(rollout::finish_reason_name(s.finish));
      length += static_cast<double>(s.tokens.size());
    }
  reward::RewardScores local;
  if (!mine.empty()) {
    local = rewards.score(batch);
  } else {
    local.names = names;
    local.parts.resize(names.size());
    local.seconds.assign(names.size(), 0.0);
  }
  double correct = 0, passed = 0;
  size_t k = 0;
  for (size_t j = 0; j < mine.size(); ++j) {
    bool any = false;
    for (int64_t s = 0; s < o.samples; ++s, ++k) {
      const bool ok = local.parts[acc_part][k] >= o.accuracy_threshold;
      correct += ok;
      any = any || ok;
    }
    passed += any;
  }
  const auto sums = d.sum({correct, passed, length});
  const auto scores = all_gather_scores(d, local);
  r.prompts = static_cast<int64_t>(n);
  r.samples = static_cast<int64_t>(scores.size());
  r.accuracy = sums[0] / static_cast<double>(r.samples);
  r.pass_at_k = sums[1] / static_cast<double>(n);
  r.response_length = sums[2] / static_cast<double>(r.samples);
  for (const auto& [name, value] : scores.summary()) {
    if (name == "reward_mean")
      r.reward_mean = value;
    else if (name.rfind("reward/", 0) == 0)
      r.parts.emplace_back(name, value);
  }
  if (was_training) model->train();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace rlft::rl
