#include "rl/grpo_trainer.h"

#include <torch/nn/module.h>
#include <torch/utils.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

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
  reward::RewardScores all_scores;                    // every drawn completion (metrics)
};

// Takes the next prompt of the training split (epochs in epoch_order).
class PromptCursor {
 public:
  PromptCursor(const std::vector<data::Example>& train, uint64_t seed) : train_(train), seed_(seed) {}
  const data::Example& next(int64_t& cursor) {
    const int64_t n = static_cast<int64_t>(train_.size());
    const int64_t epoch = cursor / n;
    if (epoch != epoch_) {
      order_ = data::epoch_order(n, seed_, epoch);
      epoch_ = epoch;
    }
    return train_[order_[cursor++ % n]];
  }

 private:
  const std::vector<data::Example>& train_;
  uint64_t seed_;
  std::vector<int64_t> order_;
  int64_t epoch_ = -1;
};

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
  auto& model = job.model();
  model->train();
  OptimizerStep opt(trainable_parameters(*model), spec.precision, spec.optim, total * g.epochs * g.mini_batches);
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
  PromptCursor prompts(spec.dataset.train, seed);
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
    std::vector<reward::RewardScores> kept_scores, drawn_scores;
    int64_t prefill_tokens = 0, decode_tokens = 0;
    for (int64_t round = 0; static_cast<int64_t>(rb.groups.size()) < P; ++round) {
      const int64_t want = P - static_cast<int64_t>(rb.groups.size());
      std::vector<rollout::Request> requests;
      std::vector<const data::Example*> examples;
      for (int64_t i = 0; i < want; ++i) {
        const uint64_t id = static_cast<uint64_t>(state.cursor);
        const auto& e = prompts.next(state.cursor);
        requests.push_back({job.encode_prompt(e), G, id});
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
        for (const auto& s : groups[r].samples) {
          sb.add(*examples[r], s.text, static_cast<int64_t>(s.tokens.size()));
          sb.finish_reasons.push_back(rollout::finish_reason_name(s.finish));
        }
      auto scores = rewards.score(sb);
      t_reward += seconds_since(t0);
      drawn_scores.push_back(scores);
      rb.drawn_groups += static_cast<int64_t>(groups.size());
      const bool last_round = !g.dynamic_sampling || round >= g.max_resample_rounds;
      std::vector<size_t> keep_rows;
      for (size_t r = 0; r < groups.size(); ++r) {
        const double* t = scores.total.data() + r * G;
        const bool flat = std::all_of(t, t + G, [&](double v) { return v == t[0]; });
        rb.zero_variance_groups += flat;
        if (g.dynamic_sampling && flat && !last_round) continue;
        if (static_cast<int64_t>(rb.groups.size()) >= P) break;
        rb.groups.push_back(std::move(groups[r]));
        rb.examples.push_back(examples[r]);
        for (int64_t s = 0; s < G; ++s) keep_rows.push_back(r * G + s);
      }
      kept_scores.push_back(select_scores(scores, keep_rows));
      if (last_round) break;
    }
    rb.scores = concat_scores(kept_scores);
    rb.all_scores = concat_scores(drawn_scores);
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
    const auto adv = compute_advantages(rewards_t, g.advantage);
    const auto adv_flat = adv.values.reshape({N}).contiguous();

    // --- train ---------------------------------------------------------------------------
    LossOptions lo = g.loss;
    if (g.kl_in_reward) lo.kl_beta = 0.0;
    double loss_sum = 0, pl_sum = 0, kl_sum = 0, ent_sum = 0, clip_sum = 0, ratio_sum = 0, akl_sum = 0;
    double gnorm_sum = 0, lr = 0, scale = 1;
    int64_t n_opt = 0, n_applied = 0;
    LoadAccumulator loads;
    for (int64_t epoch = 0; epoch < g.epochs; ++epoch)
      for (const auto& mics : minis) {
        int64_t mini_rows = 0;
        double mini_tokens = 0;  // completion tokens that count in the loss
        for (const auto& rg : mics) {
          mini_rows += rg.end - rg.begin;
          for (int64_t i = rg.begin; i < rg.end; ++i)
            mini_tokens += seqs[i].token_mask.empty()
                               ? static_cast<double>(seqs[i].completion.size())
                               : std::accumulate(seqs[i].token_mask.begin(), seqs[i].token_mask.end(), 0.0);
        }
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
            weight = static_cast<double>(rg.end - rg.begin) / static_cast<double>(mini_rows);
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
        gnorm_sum += r.grad_norm;
        lr = r.lr;
        scale = spec.precision.loss_scaling ? opt.loss_scale().scale() : 1.0;  // in force after this step
        ++n_opt;
        n_applied += r.applied;
      }
    if (n_applied > 0) update_trunk_router_bias(model, loads.loads(), g.router_bias_gamma);
    const double t_train = seconds_since(t_train0);
    ++state.step;

    // --- metrics -------------------------------------------------------------------------
    for (const auto& kv : rb.scores.summary()) m.push_back(kv);
    int64_t correct = 0;
    for (double v : rb.scores.parts[acc_part]) correct += v >= spec.eval.accuracy_threshold;
    const double nd = static_cast<double>(N);
    const auto a = adv_flat.to(at::kDouble);
    m.insert(m.end(), {{"accuracy", correct / nd},
                       {"advantage/mean", a.mean().item<double>()},
                       {"advantage/std", N > 1 ? a.std().item<double>() : 0.0},
                       {"advantage/abs_mean", a.abs().mean().item<double>()},
                       {"zero_variance_frac", static_cast<double>(rb.zero_variance_groups) / rb.drawn_groups},
                       {"groups_drawn", static_cast<double>(rb.drawn_groups)},
                       {"loss", loss_sum / n_opt},
                       {"policy_loss", pl_sum / n_opt},
                       {"kl", g.kl_in_reward ? reward_kl_sum / std::max(reward_kl_tokens, 1.0) : kl_sum / n_opt},
                       {"entropy", ent_sum / n_opt},
                       {"clip_fraction", clip_sum / n_opt},
                       {"ratio_mean", ratio_sum / n_opt},
                       {"approx_kl_old", akl_sum / n_opt},
                       {"grad_norm", gnorm_sum / n_opt},
                       {"lr", lr},
                       {"loss_scale", scale},
                       {"skipped_steps", static_cast<double>(state.skipped_steps)},
                       {"response_length/mean", resp_sum / nd},
                       {"response_length/max", static_cast<double>(resp_max)},
                       {"truncated_frac", truncated / nd},
                       {"time/rollout", t_rollout},
                       {"time/reward", t_reward},
                       {"time/train", t_train},
                       {"time/sync", 0.0},
                       {"rollout/prefill_tokens", static_cast<double>(prefill_tokens)},
                       {"rollout/decode_tokens_per_s", decode_tokens / std::max(t_rollout, 1e-9)}});
    loads.append_metrics(m);
    const double step_secs = seconds_since(t_step);
    double train_tokens = 0;
    for (const auto& q : seqs) train_tokens += static_cast<double>(q.prompt.size() + q.completion.size());
    m.emplace_back("tokens_per_s", (train_tokens + decode_tokens) / std::max(step_secs, 1e-9));
    m.emplace_back("time/step", step_secs);

    // Stored rollouts for `rlft serve` / `rlft runs show`.
    if (g.log_rollouts > 0) {
      std::vector<data::RolloutRecord> recs;
      const int64_t n_log = std::min<int64_t>(g.log_rollouts, Pk);
      for (int64_t p = 0; p < n_log; ++p)
        for (int64_t s = 0; s < G; ++s) {
          const size_t i = static_cast<size_t>(p * G + s);
          data::RolloutRecord r;
          r.step = state.step;
          r.prompt_index = p;
          r.sample_index = s;
          r.prompt = job.prompt_text(*rb.examples[p]);
          r.completion = rb.groups[p].samples[s].text;
          r.reward = rb.scores.total[i];
          r.parts = rb.scores.parts_of(i);
          r.advantage = adv_flat[static_cast<int64_t>(i)].item<double>();
          r.finish_reason = rollout::finish_reason_name(rb.groups[p].samples[s].finish);
          r.policy_version = state.step - 1;
          recs.push_back(std::move(r));
        }
      job.store().add_rollouts(job.run_id(), recs);
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
