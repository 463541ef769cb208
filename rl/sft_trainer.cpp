#include "rl/sft_trainer.h"

#include <torch/nn/module.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "rl/data_order.h"
#include "rl/evaluate.h"
#include "rl/expert_load.h"
#include "rl/optimizer_step.h"
#include "rl/precision.h"
#include "rl/sequence_batch.h"
#include "rl/step_log.h"
#include "rl/step_memory.h"
#include "rl/train_state.h"

namespace rlft::rl {

TrainResult run_sft(Job& job, const SftOptions& o, int64_t stop_after) {
  auto& spec = job.spec();
  const auto& train = spec.dataset.train;
  const int64_t n = static_cast<int64_t>(train.size());
  const int64_t total =
      o.steps > 0 ? o.steps : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(o.epochs * n / o.batch_size)));
  check_precision(spec.precision, job.device());
  if (o.train_on == "assistant_turns" && job.chat_template() == nullptr)
    throw ConfigError(
        "sft.train_on = assistant_turns: the assistant turns are located by the chat template, and this run has none "
        "(the tokenizer has no chat_template, or prompt.chat_template is none, or prompt.chat/prompt.template "
        "chose a hand-written format); give prompt.chat_template: FILE or train on the completion");
  auto& d = job.dist();
  const int64_t local = rank_share(d, o.batch_size, "sft.batch_size"), R = d.rank();
  auto& model = job.model();
  model->train();
  OptimizerStep opt(trainable_parameters(*model), spec.precision, spec.optim, total, &job.dist(),
                    spec.distributed.bucket_mb);
  TrainerState state = resume_trainer_state(job.resume_from(), job.dist(), opt);
  if (state.step > 0) log::info("sft: resuming after step {} of {}", state.step, total);
  const bool mtp = !model->model->mtp_layers.empty() && o.mtp_weight > 0;
  const bool balance = o.balance.switch_coef > 0 || o.balance.seq_alpha > 0;
  const uint64_t data_seed = static_cast<uint64_t>(spec.run.seed);
  log::info("sft: {} steps of {} examples ({} training examples, {:.2f} epochs), run '{}' -> {}", total, o.batch_size,
            n, static_cast<double>(total * o.batch_size) / n, job.run_name(), job.output_dir());
  install_stop_handlers();

  EpochOrder order(n, data_seed);
  TrainResult result;
  while (state.step < total) {
    const auto t0 = std::chrono::steady_clock::now();
    start_step_memory(job.device());
    // The global batch is examples [cursor, cursor + batch_size); rank R takes its slice.
    std::vector<Sequence> seqs;
    for (int64_t i = R * local; i < (R + 1) * local; ++i) {
      const auto& e = train[static_cast<size_t>(order.at(state.cursor + i))];
      if (o.train_on == "assistant_turns")
        seqs.push_back(job.encode_conversation(e, e.completion));
      else if (job.chat_template() != nullptr && job.chat_template()->has_generation_blocks())
        seqs.push_back(job.encode_conversation(e, e.completion, false));  // the reply as its block marks it
      else
        seqs.push_back({job.encode_prompt(e), job.encode_reply(e, e.completion), {}, {}});
    }
    state.cursor += o.batch_size;
    const auto batch = make_sequence_batch(seqs, job.device());
    // Every rank divides by the global count of target tokens: the summed gradients are then
    // those of one process with the whole batch.
    const double local_tokens = batch.mask.sum().item<double>();
    // The MTP loss is a mean over the positions whose token two ahead is valid (the first
    // depth's count; exact for one MTP depth, DeepSeek-V3's): weighted by this rank's share.
    double local_mtp = 0;
    if (mtp) local_mtp = (batch.attention_mask.sum(1) - 2).clamp_min(0).sum().item<double>();
    const auto counts = d.sum({local_tokens, local_mtp});
    const double global_tokens = counts[0];
    const double share = local_tokens / std::max(global_tokens, 1.0);
    const double mtp_share = local_mtp / std::max(counts[1], 1.0);
    PolicyForwardOptions fo;
    fo.mtp = mtp;
    if (balance) fo.balance = o.balance;
    PolicyForward f;
    at::Tensor loss, ce;
    {
      AutocastGuard ac(spec.precision.compute, job.device());
      f = policy_forward(model, batch, fo);
    }
    const auto& out = f.out;
    const auto& logp = f.logp;
    const auto mask = batch.mask;
    ce = -(logp * mask).sum() / std::max(global_tokens, 1.0);
    loss = ce;
    // The MTP and balance losses are means over this rank's tokens: weighted by its share.
    if (mtp) loss = loss + mtp_share * o.mtp_weight * out.mtp_loss;
    if (balance && out.aux_loss.defined()) loss = loss + share * out.aux_loss;
    (loss * opt.loss_multiplier(state)).backward();
    const auto r = opt.step(state);
    LoadAccumulator loads;
    loads.add(out.router);
    loads.all_reduce(d);
    if (r.applied) update_trunk_router_bias(model, loads.loads(), o.router_bias_gamma);
    ++state.step;
    const auto sums =
        d.sum({ce.item<double>(), loss.item<double>(), mtp ? mtp_share * out.mtp_loss.item<double>() : 0.0,
               batch.attention_mask.sum().item<double>()});
    const double secs = seconds_since(t0);
    const double tokens = sums[3];
    Metrics m = {{"sft/loss", sums[0]},
                 {"loss", sums[1]},
                 {"lr", r.lr},
                 {"grad_norm", r.grad_norm},
                 {"skipped_steps", static_cast<double>(state.skipped_steps)},
                 {"loss_scale", spec.precision.loss_scaling ? opt.loss_scale().scale() : 1.0},
                 {"tokens_per_s", tokens / std::max(secs, 1e-9)},
                 {"time/train", secs},
                 {"time/allreduce", r.sync.seconds},
                 {"time/allreduce_wait", r.sync.wait_seconds},
                 {"allreduce/megabytes", static_cast<double>(r.sync.bytes) / 1e6},
                 {"epoch", static_cast<double>(state.cursor) / n}};
    if (mtp) m.emplace_back("sft/mtp_loss", sums[2]);
    loads.append_metrics(m);
    append_step_memory(m, d, job.device());

    const bool last = state.step == total;
    const bool eval_now = spec.rewards && spec.eval.enabled && !spec.dataset.eval.empty() &&
                          (last || (spec.eval.every > 0 && state.step % spec.eval.every == 0));
    if (eval_now) {
      const auto ev = evaluate(job, spec.dataset.eval, spec.eval, 64, data_seed);
      for (const auto& kv : ev.metrics()) m.push_back(kv);
    }
    job.log_metrics(state.step, m);
    if (state.step % o.log_every == 0 || last || eval_now)
      log::info("{}", console_line(fmt::format("sft step {}/{}", state.step, total), m,
                                   {{"loss", "sft/loss"},
                                    {"mtp", "sft/mtp_loss"},
                                    {"lr", "lr"},
                                    {"gnorm", "grad_norm"},
                                    {"balance", "moe/balance_max"},
                                    {"tok/s", "tokens_per_s"},
                                    {"peak MB", "memory/peak_rss_mb"},
                                    {"eval acc", "eval/accuracy"}}));
    if (end_of_step(job, state, opt.optimizer(), total, stop_after, "sft", result)) return result;
  }
  return finish_training(job, state, opt.optimizer());
}

}  // namespace rlft::rl
