#include "rl/grpo_trainer.h"

#include <torch/nn/module.h>
#include <torch/utils.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <tuple>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "rl/advantages.h"
#include "rl/evaluate.h"
#include "rl/losses.h"
#include "rl/precision.h"
#include "rl/sequence_batch.h"
#include "rl/train_common.h"
#include "rl/train_state.h"
#include "rollout/generator.h"

namespace rlft::rl {
namespace {

// One completion of the step's batch, with what the trainer needs of it.
struct Item {
  const data::Example* example = nullptr;
  size_t group = 0;  // index into the step's kept groups
  rollout::Sample sample;
  std::vector<int64_t> prompt;
  std::string prompt_text;
};

struct RolloutBatch {
  std::vector<rollout::Group> groups;                 // kept, P of them
  std::vector<const data::Example*> examples;         // per kept group
  reward::RewardScores scores;                        // flattened P×G, kept groups only
  at::Tensor rewards;                                 // [P, G] float64
  int64_t drawn_groups = 0;                           // generated, kept or not
  int64_t zero_variance_groups = 0;                   // among the drawn ones
};

nlohmann::json record_json(const data::RolloutRecord& r) {
  nlohmann::json parts = nlohmann::json::array();
  for (const auto& [name, v] : r.parts) parts.push_back({name, v});
  return {{"step", r.step},           {"prompt_index", r.prompt_index}, {"sample_index", r.sample_index},
          {"prompt", r.prompt},       {"completion", r.completion},     {"reward", r.reward},
          {"parts", parts},           {"advantage", r.advantage},       {"finish_reason", r.finish_reason},
          {"policy_version", r.policy_version}};
}

data::RolloutRecord record_from_json(const nlohmann::json& j) {
  data::RolloutRecord r;
  r.step = j.at("step").get<int64_t>();
  r.prompt_index = j.at("prompt_index").get<int64_t>();
  r.sample_index = j.at("sample_index").get<int64_t>();
  r.prompt = j.at("prompt").get<std::string>();
  r.completion = j.at("completion").get<std::string>();
  r.reward = j.at("reward").get<double>();
  for (const auto& p : j.at("parts")) r.parts.emplace_back(p.at(0).get<std::string>(), p.at(1).get<double>());
  r.advantage = j.at("advantage").get<double>();
  r.finish_reason = j.at("finish_reason").get<std::string>();
  r.policy_version = j.at("policy_version").get<int64_t>();
  return r;
}

reward::RewardScores concat_scores(const std::vector<reward::RewardScores>& parts) {
  reward::RewardScores out;
  for (const auto& s : parts) {
    if (out.names.empty()) {
      out.names = s.names;
      out.weights = s.weights;
      out.parts.resize(s.names.size());
      out.seconds.assign(s.names.size(), 0.0);
    }
    out.total.insert(out.total.end(), s.total.begin(), s.total.end());
    for (size_t k = 0; k < s.parts.size(); ++k) {
      out.parts[k].insert(out.parts[k].end(), s.parts[k].begin(), s.parts[k].end());
      out.seconds[k] += s.seconds[k];
    }
  }
  return out;
}

reward::RewardScores select_scores(const reward::RewardScores& s, const std::vector<size_t>& rows) {
  reward::RewardScores out;
  out.names = s.names;
  out.weights = s.weights;
  out.seconds = s.seconds;
  out.parts.resize(s.parts.size());
  for (size_t r : rows) {
    out.total.push_back(s.total[r]);
    for (size_t k = 0; k < s.parts.size(); ++k) out.parts[k].push_back(s.parts[k][r]);
  }
  return out;
}

}  // namespace

TrainResult run_grpo(Job& job, int64_t stop_after) {
  auto& spec = job.spec();
  const auto& g = *spec.grpo;
  auto& rewards = *spec.rewards;
  const int64_t total = g.steps;
  const int64_t P = g.prompts_per_step, G = g.group_size;
  check_precision(spec.precision, job.device());
  RLFT_CHECK(!spec.dataset.train.empty(), "rlft train: the training split is empty");
  auto& d = job.dist();
  const int64_t W = d.world_size(), R = d.rank();
  if (W > 1 && P % (g.mini_batches * W) != 0)
    throw ConfigError(fmt::format(
        "grpo.prompts_per_step = {} must be divisible by grpo.mini_batches × world size = {} × {} (every "
        "optimizer step takes the same number of whole groups from each rank)",
        P, g.mini_batches, W));
  // Rank R's groups: in each of the m mini-batches of P/m groups, the R-th run of P/(m·W)
  // (all P with one rank). Its local groups are then its share of each mini-batch, in order.
  const int64_t P_local = P / W;
  const int64_t run = W > 1 ? P / (g.mini_batches * W) : P;
  auto global_group = [&](int64_t local) {
    return W > 1 ? (local / run) * (P / g.mini_batches) + R * run + local % run : local;
  };
  auto& model = job.model();
  model->train();
  OptimizerStep opt = make_optimizer_step(job, *model, total * g.epochs * g.mini_batches);
  TrainerState state = resume_trainer_state(job, opt);
  if (state.step > 0) log::info("train: resuming after step {} of {}", state.step, total);
  const bool moe = model->config().is_moe();
  const bool replay = g.routing_replay && moe;
  const bool balance = g.balance.switch_coef > 0 || g.balance.seq_alpha > 0;
  const bool use_ref = g.loss.kl_beta > 0;
  policy::CausalLM ref{nullptr};
  if (use_ref) {
    ref = job.initial_policy();  // frozen at the weights the run started from
    ref->eval();
    for (auto& p : ref->parameters()) p.set_requires_grad(false);
  }
  const auto names = rewards.names();
  const size_t acc_part = spec.eval.accuracy_reward.empty()
                              ? 0
                              : std::find(names.begin(), names.end(), spec.eval.accuracy_reward) - names.begin();
  const uint64_t seed = static_cast<uint64_t>(spec.run.seed);
  EpochOrder prompts(static_cast<int64_t>(spec.dataset.train.size()), seed);
  rollout::Generator gen(model);
  rollout::GenerateOptions gopt;
  gopt.max_new_tokens = g.max_new_tokens;
  gopt.stop_token_ids = {job.eos_id()};
  gopt.use_model_eos = false;
  gopt.stop_strings = g.stop_strings;
  gopt.detokenize = [&job](const std::vector<int64_t>& ids) { return job.decode(ids); };
  gopt.record_routing = replay;
  gopt.max_batch_rows = std::max<int64_t>(G, 256);
  gopt.seed = seed;
  gopt.vocab_limit = job.tok().vocab_size();
  const int64_t eval_tokens = spec.eval.max_new_tokens > 0 ? spec.eval.max_new_tokens : g.max_new_tokens;

  log::info("train: GRPO, {} steps × {} prompts × {} samples, rewards {}, run '{}' -> {}", total, P, G,
            rewards.describe(), job.run_name(), job.output_dir());
  install_stop_handlers();
  if (state.step == 0 && spec.eval.enabled && !spec.dataset.eval.empty()) {
    const auto ev = evaluate(job, spec.dataset.eval, spec.eval, eval_tokens, seed);
    job.log_metrics(0, ev.metrics());
    log::info("eval before training: accuracy {:.3f}, reward {:.3f} ({} prompts, {:.1f} s)", ev.accuracy,
              ev.reward_mean, ev.prompts, ev.seconds);
  }

  TrainResult result;
  while (state.step < total) {
    const auto t_step = std::chrono::steady_clock::now();
    Metrics m;
    // --- rollout and reward ----------------------------------------------------------------
    double t_rollout = 0, t_reward = 0;
    RolloutBatch rb;
    std::vector<reward::RewardScores> kept_scores;
    int64_t prefill_tokens = 0, decode_tokens = 0;
    for (int64_t round = 0;; ++round) {
      // Round 0 draws the step's P prompts, each rank its own positions; a resampling round
      // (DAPO) draws, after the ranks' counts, as many fresh prompts as each rank still needs.
      const int64_t need = P_local - static_cast<int64_t>(rb.groups.size());
      std::vector<int64_t> positions;
      int64_t drawn = 0;
      if (round == 0) {
        for (int64_t i = 0; i < P_local; ++i) positions.push_back(state.cursor + global_group(i));
        drawn = P;
      } else {
        const auto needs = d.all_gather({static_cast<double>(need)});
        int64_t before = 0;
        for (int64_t r = 0; r < W; ++r) {
          if (r < R) before += static_cast<int64_t>(needs[static_cast<size_t>(r)]);
          drawn += static_cast<int64_t>(needs[static_cast<size_t>(r)]);
        }
        if (drawn == 0) break;
        for (int64_t i = 0; i < need; ++i) positions.push_back(state.cursor + before + i);
      }
      state.cursor += drawn;
      const bool last_round = !g.dynamic_sampling || round >= g.max_resample_rounds;
      if (!positions.empty()) {
        std::vector<rollout::Request> requests;
        std::vector<const data::Example*> examples;
        for (const int64_t c : positions) {
          const auto& e = spec.dataset.train[static_cast<size_t>(prompts.at(c))];
          requests.push_back({job.encode_prompt(e), G, static_cast<uint64_t>(c)});
          examples.push_back(&e);
        }
        auto t0 = std::chrono::steady_clock::now();
        rollout::GenerateStats gs;
        auto groups = gen.generate(requests, g.sampling, gopt, &gs);
        prefill_tokens += gs.prefill_tokens;
        decode_tokens += gs.decode_tokens;
        t_rollout += seconds_since(t0);
        t0 = std::chrono::steady_clock::now();
        reward::ScoreBatch sb;
        for (size_t r = 0; r < groups.size(); ++r)
          for (const auto& smp : groups[r].samples) {
            sb.add(*examples[r], smp.text, static_cast<int64_t>(smp.tokens.size()));
            sb.finish_reasons.push_back(rollout::finish_reason_name(smp.finish));
          }
        auto scores = rewards.score(sb);
        t_reward += seconds_since(t0);
        rb.drawn_groups += static_cast<int64_t>(groups.size());
        std::vector<size_t> keep_rows;
        for (size_t r = 0; r < groups.size(); ++r) {
          const double* t = scores.total.data() + r * G;
          const bool flat = std::all_of(t, t + G, [&](double v) { return v == t[0]; });
          rb.zero_variance_groups += flat;
          if (g.dynamic_sampling && flat && !last_round) continue;
          if (static_cast<int64_t>(rb.groups.size()) >= P_local) break;
          rb.groups.push_back(std::move(groups[r]));
          rb.examples.push_back(examples[r]);
          for (int64_t k = 0; k < G; ++k) keep_rows.push_back(r * G + k);
        }
        kept_scores.push_back(select_scores(scores, keep_rows));
      }
      if (last_round) break;
    }
    rb.scores = concat_scores(kept_scores);
    const int64_t Pk = static_cast<int64_t>(rb.groups.size());

    // --- sequences, reference log-probs, advantages ----------------------------------------
    std::vector<Sequence> seqs;
    std::vector<std::vector<float>> behaviour;
    int64_t truncated = 0, resp_max = 0;
    double resp_sum = 0;
    for (const auto& grp : rb.groups)
      for (const auto& s : grp.samples) {
        Sequence q;
        q.prompt = grp.prompt;
        q.completion = s.tokens;
        q.routing = s.routing;
        const bool cut = s.finish == rollout::FinishReason::kLength;
        truncated += cut;
        if (g.mask_truncated && cut) q.token_mask.assign(s.tokens.size(), 0);
        seqs.push_back(std::move(q));
        behaviour.push_back(s.logprobs);
        resp_sum += static_cast<double>(s.tokens.size());
        resp_max = std::max<int64_t>(resp_max, static_cast<int64_t>(s.tokens.size()));
      }
    const int64_t N = static_cast<int64_t>(seqs.size());
    const int64_t micro = g.micro_batch_rows > 0 ? g.micro_batch_rows : N;
    auto rewards_t = at::tensor(rb.scores.total, at::kDouble).reshape({Pk, G});

    // Row ranges of the micro-batches of each mini-batch (groups stay whole in a mini-batch).
    const int64_t groups_per_mini = std::max<int64_t>(1, Pk / g.mini_batches);
    struct Range {
      int64_t begin, end;
    };
    std::vector<std::vector<Range>> minis;
    for (int64_t gb = 0; gb < Pk; gb += groups_per_mini) {
      const int64_t r0 = gb * G, r1 = std::min<int64_t>(Pk, gb + groups_per_mini) * G;
      std::vector<Range> mics;
      for (int64_t b = r0; b < r1; b += micro) mics.push_back({b, std::min(r1, b + micro)});
      minis.push_back(mics);
    }
    auto slice = [&](const Range& rg) {
      return std::vector<Sequence>(seqs.begin() + rg.begin, seqs.begin() + rg.end);
    };
    auto slice_vals = [&](const std::vector<std::vector<float>>& v, const Range& rg) {
      return std::vector<std::vector<float>>(v.begin() + rg.begin, v.begin() + rg.end);
    };

    const auto t_train0 = std::chrono::steady_clock::now();
    std::vector<std::vector<float>> ref_lp(N), old_lp = behaviour;
    if (use_ref || g.recompute_old_logp) {
      torch::NoGradGuard ng;
      for (const auto& mics : minis)
        for (const auto& rg : mics) {
          const auto batch = make_sequence_batch(slice(rg), job.device());
          PolicyForwardOptions fo;
          fo.temperature = g.sampling.temperature;
          fo.replay_routing = replay;
          AutocastGuard ac(spec.precision.compute, job.device());
          if (use_ref) {
            const auto lp = batch.gather(policy_forward(ref, batch, fo).logp);
            std::copy(lp.begin(), lp.end(), ref_lp.begin() + rg.begin);
          }
          if (g.recompute_old_logp) {
            const auto lp = batch.gather(policy_forward(model, batch, fo).logp);
            std::copy(lp.begin(), lp.end(), old_lp.begin() + rg.begin);
          }
        }
    }
    double reward_kl_sum = 0, reward_kl_tokens = 0;  // the per-token k1 the reward was charged
    if (use_ref && g.kl_in_reward) {
      // r_i -= β · Σ_t k1(t): the KL penalty as part of the reward (InstructGPT, REINFORCE++).
      auto acc = rewards_t.accessor<double, 2>();
      for (int64_t i = 0; i < N; ++i) {
        double kl = 0;
        for (size_t t = 0; t < behaviour[i].size(); ++t) kl += behaviour[i][t] - ref_lp[i][t];
        acc[i / G][i % G] -= g.loss.kl_beta * kl;
        reward_kl_sum += kl;
        reward_kl_tokens += static_cast<double>(behaviour[i].size());
      }
    }
    // Advantages over the global batch (a batch-level scale sees every rank's rewards): rank
    // order concatenation, this rank's rows [R·P_local, (R+1)·P_local).
    at::Tensor global_rewards = rewards_t;
    if (W > 1) {
      const auto flat = d.all_gather(std::vector<double>(rewards_t.data_ptr<double>(),
                                                         rewards_t.data_ptr<double>() + rewards_t.numel()));
      global_rewards = at::tensor(flat, at::kDouble).reshape({P, G});
    }
    const auto adv = compute_advantages(global_rewards, g.advantage);
    const auto adv_global = adv.values.reshape({-1}).contiguous();
    const auto adv_flat = adv_global.narrow(0, R * N, N).contiguous();

    // --- train ---------------------------------------------------------------------------
    LossOptions lo = g.loss;
    if (g.kl_in_reward) lo.kl_beta = 0.0;
    double loss_sum = 0, pl_sum = 0, kl_sum = 0, ent_sum = 0, clip_sum = 0, ratio_sum = 0, akl_sum = 0;
    double gnorm_sum = 0, lr = 0, scale = 1;
    int64_t n_opt = 0, n_applied = 0;
    LoadAccumulator loads;
    // Each mini-batch's rows and loss-counted completion tokens over all ranks: every rank
    // weighs its micro-batches by these, so the summed gradient is the global batch's.
    std::vector<double> mini_counts;
    for (const auto& mics : minis) {
      double rows = 0, tokens = 0;
      for (const auto& rg : mics) {
        rows += static_cast<double>(rg.end - rg.begin);
        for (int64_t i = rg.begin; i < rg.end; ++i)
          tokens += seqs[i].token_mask.empty()
                        ? static_cast<double>(seqs[i].completion.size())
                        : std::accumulate(seqs[i].token_mask.begin(), seqs[i].token_mask.end(), 0.0);
      }
      mini_counts.push_back(rows);
      mini_counts.push_back(tokens);
    }
    mini_counts = d.sum(mini_counts);
    double t_allreduce = 0, t_allreduce_wait = 0, allreduce_bytes = 0;
    for (int64_t epoch = 0; epoch < g.epochs; ++epoch)
      for (size_t mi = 0; mi < minis.size(); ++mi) {
        const auto& mics = minis[mi];
        const double mini_rows = mini_counts[2 * mi], mini_tokens = mini_counts[2 * mi + 1];
        for (const auto& rg : mics) {
          const auto batch = make_sequence_batch(slice(rg), job.device());
          PolicyForwardOptions fo;
          fo.temperature = g.sampling.temperature;
          fo.replay_routing = replay;
          fo.entropy = true;
          if (balance) fo.balance = g.balance;
          PolicyForward f;
          {
            AutocastGuard ac(spec.precision.compute, job.device());
            f = policy_forward(model, batch, fo);
          }
          if (epoch == 0) loads.add(f.out.router);
          LossInputs li;
          li.logp = f.logp;
          li.old_logp = batch.scatter(slice_vals(old_lp, rg));
          li.advantages = adv_flat.narrow(0, rg.begin, rg.end - rg.begin).to(job.device());
          li.mask = batch.mask;
          if (use_ref && lo.kl_beta > 0) li.ref_logp = batch.scatter(slice_vals(ref_lp, rg));
          li.entropy = f.entropy.detach();
          if (lo.entropy_coef > 0) li.entropy = f.entropy;
          const auto out = policy_loss(li, lo);
          double weight;
          if (lo.aggregation == LossAggregation::kTokenMean) {
            weight = batch.mask.sum().item<double>() / std::max(mini_tokens, 1.0);
          } else {
            weight = static_cast<double>(rg.end - rg.begin) / std::max(mini_rows, 1.0);
          }
          at::Tensor loss = out.loss;
          if (balance && f.out.aux_loss.defined()) loss = loss + f.out.aux_loss;
          (loss * (weight * opt.loss_multiplier(state))).backward();
          loss_sum += loss.item<double>() * weight;
          pl_sum += out.policy_loss * weight;
          kl_sum += out.kl * weight;
          ent_sum += out.entropy * weight;
          clip_sum += out.clip_fraction * weight;
          ratio_sum += out.ratio_mean * weight;
          akl_sum += out.approx_kl_old * weight;
        }
        const auto r = opt.step(state);
        t_allreduce += r.sync.seconds;
        t_allreduce_wait += r.sync.wait_seconds;
        allreduce_bytes += static_cast<double>(r.sync.bytes);
        gnorm_sum += r.grad_norm;
        lr = r.lr;
        scale = spec.precision.loss_scaling ? opt.loss_scale().scale() : 1.0;  // in force after this step
        ++n_opt;
        n_applied += r.applied;
      }
    loads.all_reduce(d);
    if (n_applied > 0) update_trunk_router_bias(model, loads.loads(), g.router_bias_gamma);
    const double t_train = seconds_since(t_train0);
    ++state.step;

    // --- metrics (over every rank's groups) ---------------------------------------------
    const auto all_scores = all_gather_scores(d, rb.scores);
    for (const auto& kv : all_scores.summary()) m.push_back(kv);
    int64_t correct = 0;
    for (double v : all_scores.parts[acc_part]) correct += v >= spec.eval.accuracy_threshold;
    double train_tokens = 0;
    for (const auto& q : seqs) train_tokens += static_cast<double>(q.prompt.size() + q.completion.size());
    const auto sums = d.sum({loss_sum, pl_sum, kl_sum, ent_sum, clip_sum, ratio_sum, akl_sum, reward_kl_sum,
                             reward_kl_tokens, static_cast<double>(rb.zero_variance_groups),
                             static_cast<double>(rb.drawn_groups), resp_sum, static_cast<double>(truncated),
                             static_cast<double>(prefill_tokens), static_cast<double>(decode_tokens), train_tokens});
    const auto maxes = d.max({static_cast<double>(resp_max), t_rollout});
    const double nd = static_cast<double>(all_scores.size());
    const auto a = adv_global.to(at::kDouble);
    m.insert(m.end(), {{"accuracy", correct / nd},
                       {"advantage/mean", a.mean().item<double>()},
                       {"advantage/std", a.numel() > 1 ? a.std().item<double>() : 0.0},
                       {"advantage/abs_mean", a.abs().mean().item<double>()},
                       {"zero_variance_frac", sums[9] / sums[10]},
                       {"groups_drawn", sums[10]},
                       {"loss", sums[0] / n_opt},
                       {"policy_loss", sums[1] / n_opt},
                       {"kl", g.kl_in_reward ? sums[7] / std::max(sums[8], 1.0) : sums[2] / n_opt},
                       {"entropy", sums[3] / n_opt},
                       {"clip_fraction", sums[4] / n_opt},
                       {"ratio_mean", sums[5] / n_opt},
                       {"approx_kl_old", sums[6] / n_opt},
                       {"grad_norm", gnorm_sum / n_opt},
                       {"lr", lr},
                       {"loss_scale", scale},
                       {"skipped_steps", static_cast<double>(state.skipped_steps)},
                       {"response_length/mean", sums[11] / nd},
                       {"response_length/max", maxes[0]},
                       {"truncated_frac", sums[12] / nd},
                       {"time/rollout", t_rollout},
                       {"time/reward", t_reward},
                       {"time/train", t_train},
                       {"time/sync", 0.0},
                       {"time/allreduce", t_allreduce},
                       {"time/allreduce_wait", t_allreduce_wait},
                       {"allreduce/megabytes", allreduce_bytes / 1e6},
                       {"rollout/prefill_tokens", sums[13]},
                       {"rollout/decode_tokens_per_s", sums[14] / std::max(maxes[1], 1e-9)}});
    loads.append_metrics(m);
    const double step_secs = seconds_since(t_step);
    m.emplace_back("tokens_per_s", (sums[15] + sums[14]) / std::max(step_secs, 1e-9));
    m.emplace_back("time/step", step_secs);

    // Stored rollouts for `rlft serve` / `rlft runs show`: the first log_rollouts groups of
    // the global batch, from whichever rank holds them.
    if (g.log_rollouts > 0) {
      std::vector<data::RolloutRecord> recs;
      for (int64_t p = 0; p < Pk; ++p) {
        const int64_t gp = global_group(p);
        if (gp >= g.log_rollouts) continue;
        for (int64_t smp = 0; smp < G; ++smp) {
          const size_t i = static_cast<size_t>(p * G + smp);
          data::RolloutRecord r;
          r.step = state.step;
          r.prompt_index = gp;
          r.sample_index = smp;
          r.prompt = job.prompt_text(*rb.examples[p]);
          r.completion = rb.groups[p].samples[smp].text;
          r.reward = rb.scores.total[i];
          r.parts = rb.scores.parts_of(i);
          r.advantage = adv_flat[static_cast<int64_t>(i)].item<double>();
          r.finish_reason = rollout::finish_reason_name(rb.groups[p].samples[smp].finish);
          r.policy_version = state.step - 1;
          recs.push_back(std::move(r));
        }
      }
      if (W > 1) {
        nlohmann::json mine = nlohmann::json::array();
        for (const auto& r : recs) mine.push_back(record_json(r));
        recs.clear();
        for (const auto& text : d.all_gather_string(mine.dump()))
          for (const auto& j : nlohmann::json::parse(text)) recs.push_back(record_from_json(j));
        std::sort(recs.begin(), recs.end(), [](const data::RolloutRecord& x, const data::RolloutRecord& y) {
          return std::tie(x.prompt_index, x.sample_index) < std::tie(y.prompt_index, y.sample_index);
        });
      }
      if (job.is_main()) job.store().add_rollouts(job.run_id(), recs);
    }
    const bool last = state.step == total;
    const bool eval_now = spec.eval.enabled && !spec.dataset.eval.empty() && (last || (spec.eval.every > 0 && state.step % spec.eval.every == 0));
    if (eval_now) {
      const auto ev = evaluate(job, spec.dataset.eval, spec.eval, eval_tokens, seed);
      for (const auto& kv : ev.metrics()) m.push_back(kv);
    }
    job.log_metrics(state.step, m);
    log::info("{}", console_line(fmt::format("step {}/{}", state.step, total), m,
                                 {{"reward", "reward_mean"},
                                  {"acc", "accuracy"},
                                  {"zero-var", "zero_variance_frac"},
                                  {"loss", "loss"},
                                  {"kl", "kl"},
                                  {"ent", "entropy"},
                                  {"clip", "clip_fraction"},
                                  {"gnorm", "grad_norm"},
                                  {"len", "response_length/mean"},
                                  {"s", "time/step"},
                                  {"eval acc", "eval/accuracy"}}));
    if (end_of_step(job, state, opt.optimizer(), total, stop_after, "train", result)) return result;
  }
  return finish_training(job, state, opt.optimizer());
}

}  // namespace rlft::rl
