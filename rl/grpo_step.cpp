#include "rl/grpo_step.h"

#include <torch/utils.h>

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "policy/lora.h"
#include "rl/advantages.h"
#include "rl/losses.h"

namespace rlft::rl {

PolicyForwardOptions GrpoSetup::forward_options(bool train) const {
  PolicyForwardOptions fo;
  fo.temperature = options.sampling.temperature;
  fo.replay_routing = replay;
  if (train) {
    fo.entropy = true;
    if (balance) fo.balance = options.balance;
  }
  return fo;
}

std::vector<std::vector<RowRange>> plan_micro_batches(int64_t groups, int64_t group_size, int64_t mini_batches,
                                                      const MicroBatchLimits& limits,
                                                      const std::vector<int64_t>& lengths) {
  RLFT_CHECK(limits.tokens == 0 || static_cast<int64_t>(lengths.size()) == groups * group_size,
             "micro-batch plan: {} row lengths for {} rows", lengths.size(), groups * group_size);
  const int64_t groups_per_mini = std::max<int64_t>(1, groups / mini_batches);
  std::vector<std::vector<RowRange>> plan;
  for (int64_t first = 0; first < groups; first += groups_per_mini) {
    // Mini-batch rows [r0, r1): groups [first, first + groups_per_mini), G rows each.
    const int64_t r0 = first * group_size, r1 = std::min<int64_t>(groups, first + groups_per_mini) * group_size;
    std::vector<RowRange> micros;
    RowRange cur{r0, r0};
    int64_t longest = 0;  // of cur's rows
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t len = limits.tokens > 0 ? lengths[static_cast<size_t>(r)] : 0;
      if (limits.tokens > 0 && len > limits.tokens)
        throw ConfigError(
            fmt::format("grpo.micro_batch_tokens = {}: smaller than one sequence ({} tokens: prompt "
                        "and completion); raise it to at least {}",
                        limits.tokens, len, len));
      const int64_t widest = std::max(longest, len);
      const bool full = (limits.rows > 0 && cur.rows() + 1 > limits.rows) ||
                        (limits.tokens > 0 && (cur.rows() + 1) * widest > limits.tokens);
      if (cur.rows() > 0 && full) {
        micros.push_back(cur);
        cur = {r, r};
        longest = 0;
      }
      ++cur.end;
      longest = std::max(longest, len);
    }
    if (cur.rows() > 0) micros.push_back(cur);
    plan.push_back(std::move(micros));
  }
  return plan;
}

std::vector<Sequence> make_sequences(const std::vector<rollout::Group>& groups, bool mask_truncated) {
  std::vector<Sequence> out;
  for (const auto& group : groups)
    for (const auto& sample : group.samples) {
      Sequence q;
      q.prompt = group.prompt;
      q.completion = sample.tokens;
      q.routing = sample.routing;
      if (mask_truncated && sample.finish == rollout::FinishReason::kLength)
        q.token_mask.assign(sample.tokens.size(), 0);
      out.push_back(std::move(q));
    }
  return out;
}

at::Tensor behaviour_logprobs(const std::vector<rollout::Group>& groups) {
  int64_t N = 0, C = 0;
  for (const auto& group : groups)
    for (const auto& sample : group.samples) {
      ++N;
      C = std::max<int64_t>(C, static_cast<int64_t>(sample.logprobs.size()));
    }
  auto out = at::zeros({N, C}, at::kFloat);  // [N, C]
  auto o = out.accessor<float, 2>();
  int64_t i = 0;
  for (const auto& group : groups)
    for (const auto& sample : group.samples) {
      std::copy(sample.logprobs.begin(), sample.logprobs.end(), &o[i][0]);
      ++i;
    }
  return out;
}

KlCharge charge_kl_to_rewards(at::Tensor& rewards, const at::Tensor& old_logp, const at::Tensor& ref_logp,
                              const std::vector<int64_t>& lengths, double beta) {
  const int64_t G = rewards.size(1), N = static_cast<int64_t>(lengths.size());
  RLFT_CHECK(rewards.scalar_type() == at::kDouble && rewards.numel() == N, "rewards {} for {} completions",
             rewards.sizes(), N);
  auto r = rewards.accessor<double, 2>();
  auto a = old_logp.accessor<float, 2>();
  auto b = ref_logp.accessor<float, 2>();
  KlCharge charge;
  for (int64_t i = 0; i < N; ++i) {
    double kl = 0;  // Σ_t k1(t), each token's difference in float32 as the log-probs are
    for (int64_t t = 0; t < lengths[static_cast<size_t>(i)]; ++t) kl += a[i][t] - b[i][t];
    r[i / G][i % G] -= beta * kl;
    charge.sum += kl;
    charge.tokens += static_cast<double>(lengths[static_cast<size_t>(i)]);
  }
  return charge;
}

namespace {

// Counted completion tokens of rows [begin, end): every token, or the ones the mask keeps.
double loss_tokens(const std::vector<Sequence>& seqs, const RowRange& rows) {
  double tokens = 0;
  for (int64_t i = rows.begin; i < rows.end; ++i) {
    const auto& q = seqs[static_cast<size_t>(i)];
    tokens += q.token_mask.empty() ? static_cast<double>(q.completion.size())
                                   : std::accumulate(q.token_mask.begin(), q.token_mask.end(), 0.0);
  }
  return tokens;
}

}  // namespace

StepBatch build_step_batch(const GrpoSetup& setup, const CollectedGroups& collected) {
  const auto& g = setup.options;
  const auto& groups = collected.kept.groups;
  const int64_t P_local = static_cast<int64_t>(groups.size()), G = g.group_size;
  StepBatch b;
  b.sequences = make_sequences(groups, g.mask_truncated);
  const int64_t N = b.rows();
  std::vector<int64_t> lengths;
  for (const auto& q : b.sequences) lengths.push_back(static_cast<int64_t>(q.prompt.size() + q.completion.size()));
  b.mini_batches = plan_micro_batches(P_local, G, g.mini_batches, {g.micro_batch_rows, g.micro_batch_tokens}, lengths);
  b.behaviour_logp = behaviour_logprobs(groups);
  b.old_logp = b.behaviour_logp;

  const bool use_ref = static_cast<bool>(setup.ref);
  const bool recompute = g.recompute_old(setup.compute);
  if (use_ref || recompute) {
    torch::NoGradGuard no_grad;
    if (use_ref) b.ref_logp = at::zeros_like(b.behaviour_logp);
    if (recompute) b.old_logp = at::zeros_like(b.behaviour_logp);
    const auto fo = setup.forward_options(false);
    auto ref = setup.ref;
    auto model = setup.model;
    for (const auto& micros : b.mini_batches)
      for (const auto& rows : micros) {
        const auto batch = make_sequence_batch(b.sequences, rows, setup.device);
        AutocastGuard autocast(setup.compute, setup.device);
        if (use_ref) {
          policy::AdaptersDisabled base_only(*ref);  // a no-op for a separate reference model
          batch.gather_into(policy_forward(ref, batch, fo).logp, b.ref_logp.narrow(0, rows.begin, rows.rows()));
        }
        if (recompute)
          batch.gather_into(policy_forward(model, batch, fo).logp, b.old_logp.narrow(0, rows.begin, rows.rows()));
      }
  }

  // [P_local, G] float64, less the KL charge with kl_in_reward.
  auto rewards = at::tensor(collected.kept.scores.total, at::kDouble).reshape({P_local, G});
  if (use_ref && g.kl_in_reward) {
    std::vector<int64_t> lengths;
    for (const auto& q : b.sequences) lengths.push_back(static_cast<int64_t>(q.completion.size()));
    // The behaviour log-probs stand for π_old here (what sampled the tokens).
    b.reward_kl = charge_kl_to_rewards(rewards, b.behaviour_logp, b.ref_logp, lengths, g.loss.kl_beta);
  }

  // Advantages over the global batch: the ranks' rewards concatenated in rank order, so this
  // rank's rows are [R·N, (R+1)·N) of the flattened [P, G].
  // The completions' loss-counted tokens ride along (whiten_tokens weighs by them).
  std::vector<double> tokens(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) tokens[static_cast<size_t>(i)] = loss_tokens(b.sequences, RowRange{i, i + 1});
  at::Tensor global_rewards = rewards, global_tokens = at::tensor(tokens, at::kDouble).reshape({P_local, G});
  auto& d = setup.dist;
  if (d.world_size() > 1) {
    const auto flat =
        d.all_gather(std::vector<double>(rewards.data_ptr<double>(), rewards.data_ptr<double>() + rewards.numel()));
    global_rewards = at::tensor(flat, at::kDouble).reshape({setup.layout.global_count(), G});
    global_tokens = at::tensor(d.all_gather(tokens), at::kDouble).reshape({setup.layout.global_count(), G});
  }
  b.global_advantages =
      compute_advantages(global_rewards, g.advantage, global_tokens).values.reshape({-1}).contiguous();
  b.advantages = b.global_advantages.narrow(0, d.rank() * N, N).contiguous();

  // Each mini-batch's rows and loss-counted tokens over all ranks: every rank weighs its
  // micro-batches by these, so the summed gradient is the global batch's. [2m]: rows, tokens.
  std::vector<double> counts;
  for (const auto& micros : b.mini_batches) {
    double rows = 0, tokens = 0;
    for (const auto& r : micros) {
      rows += static_cast<double>(r.rows());
      tokens += loss_tokens(b.sequences, r);
    }
    counts.push_back(rows);
    counts.push_back(tokens);
  }
  counts = d.sum(counts);
  for (size_t mi = 0; mi < b.mini_batches.size(); ++mi) {
    b.mini_rows.push_back(counts[2 * mi]);
    b.mini_tokens.push_back(counts[2 * mi + 1]);
  }
  return b;
}

UpdateStats train_epochs(const GrpoSetup& setup, const StepBatch& b, OptimizerStep& opt, TrainerState& state) {
  const auto& g = setup.options;
  LossOptions lo = g.loss;
  if (g.kl_in_reward) lo.kl_beta = 0.0;  // charged to the rewards instead
  const bool kl_term = static_cast<bool>(setup.ref) && lo.kl_beta > 0;
  const auto fo = setup.forward_options(true);
  auto model = setup.model;
  UpdateStats u;
  for (int64_t epoch = 0; epoch < g.epochs; ++epoch)
    for (size_t mi = 0; mi < b.mini_batches.size(); ++mi) {
      const double mini_rows = b.mini_rows[mi], mini_tokens = b.mini_tokens[mi];
      for (const auto& rows : b.mini_batches[mi]) {
        const auto batch = make_sequence_batch(b.sequences, rows, setup.device);
        PolicyForward f;
        {
          AutocastGuard autocast(setup.compute, setup.device);
          f = policy_forward(model, batch, fo);
        }
        if (epoch == 0) u.loads.add(f.out.router);
        LossInputs li;
        li.logp = f.logp;                                                                  // [B, T - 1]
        li.old_logp = batch.scatter(b.old_logp.narrow(0, rows.begin, rows.rows()));        // [B, T - 1]
        li.advantages = b.advantages.narrow(0, rows.begin, rows.rows()).to(setup.device);  // [B]
        li.mask = batch.mask;
        if (kl_term) li.ref_logp = batch.scatter(b.ref_logp.narrow(0, rows.begin, rows.rows()));
        if (lo.behaviour_is_cap > 0)
          li.behaviour_logp = batch.scatter(b.behaviour_logp.narrow(0, rows.begin, rows.rows()));
        li.entropy = lo.entropy_coef > 0 ? f.entropy : f.entropy.detach();
        const auto out = policy_loss(li, lo);
        // This micro-batch's share of its mini-batch over every rank: by tokens or by rows.
        const double weight = lo.aggregation == LossAggregation::kTokenMean
                                  ? batch.mask.sum().item<double>() / std::max(mini_tokens, 1.0)
                                  : static_cast<double>(rows.rows()) / std::max(mini_rows, 1.0);
        at::Tensor loss = out.loss;
        if (setup.balance && f.out.aux_loss.defined()) loss = loss + f.out.aux_loss;
        (loss * (weight * opt.loss_multiplier(state))).backward();
        u.loss += loss.item<double>() * weight;
        u.policy_loss += out.policy_loss * weight;
        u.kl += out.kl * weight;
        u.entropy += out.entropy * weight;
        u.clip_fraction += out.clip_fraction * weight;
        u.ratio_mean += out.ratio_mean * weight;
        u.approx_kl_old += out.approx_kl_old * weight;
        u.is_capped += out.is_capped_fraction * weight;
      }
      const auto r = opt.step(state);
      u.allreduce_seconds += r.sync.seconds;
      u.allreduce_wait_seconds += r.sync.wait_seconds;
      u.allreduce_bytes += static_cast<double>(r.sync.bytes);
      u.grad_norm += r.grad_norm;
      u.lr = r.lr;
      u.loss_scale = opt.loss_scaling() ? opt.loss_scale().scale() : 1.0;
      ++u.optimizer_steps;
      u.applied_steps += r.applied;
    }
  u.loads.all_reduce(setup.dist);
  if (u.applied_steps > 0) update_trunk_router_bias(model, u.loads.loads(), g.router_bias_gamma);
  return u;
}

}  // namespace rlft::rl
