#include "rl/rm_trainer.h"

#include <torch/nn/module.h>
#include <torch/utils.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "reward/reward_model.h"
#include "rl/data_order.h"
#include "rl/optimizer_step.h"
#include "rl/precision.h"
#include "rl/step_log.h"
#include "rl/train_state.h"

namespace rlft::rl {
namespace {

// Held-out figures of the reward model.
struct RmEval {
  double accuracy = 0.0;
  double loss = 0.0;
  double margin_mean = 0.0;  ///< mean r_chosen − r_rejected
  int64_t pairs = 0;
};

struct Scored {
  at::Tensor chosen, rejected;  // [B]
};

}  // namespace

TrainResult run_rm(Job& job, const RmOptions& o, const std::vector<PreferenceText>& all, int64_t stop_after) {
  auto& spec = job.spec();
  check_precision(spec.precision, job.device());
  const auto split = split_preferences(all, o.eval_fraction, static_cast<uint64_t>(spec.run.seed));
  const auto& train = split.train;
  const auto& eval = split.eval;

  auto& d = job.dist();
  const int64_t local = rank_share(d, o.batch_size, "rm.batch_size"), W = d.world_size(), R = d.rank();
  reward::RewardModel rm(job.model(), static_cast<uint64_t>(spec.run.seed));
  if (!job.resume_from().empty()) {
    d.on_main("read the reward head", [&] { reward::load_reward_head(rm, job.resume_from()); });
    std::vector<at::Tensor> head;
    for (auto& p : rm->parameters()) head.push_back(p.detach());
    torch::NoGradGuard ng;
    d.broadcast(head, 0);
  }
  rm->train();
  OptimizerStep opt(trainable_parameters(*rm), spec.precision, spec.optim, o.steps, &job.dist(),
                    spec.distributed.bucket_mb);
  TrainerState state = resume_trainer_state(job.resume_from(), job.dist(), opt);
  const auto& tok = job.tok();
  // The model reads conversations as the run's chat template renders them (the template the
  // output directory keeps), or text where the run has none: reward_model.json records which.
  reward::RewardInput input;
  if (job.chat_template() != nullptr) {
    input.chat_template = *job.chat_template();
    input.chat_template_kwargs = job.chat_template_kwargs();
  }
  input.eos_id = job.eos_id();
  input.max_length = o.max_length;
  const auto device = job.device();
  auto batch_tensors = [&](const std::vector<const PreferenceText*>& pairs, bool chosen) {
    std::vector<std::vector<int64_t>> rows;
    for (const auto* p : pairs) {
      const auto& reply = chosen ? p->chosen_reply : p->rejected_reply;
      try {
        rows.push_back(p->prompt_rendered ? input.ids_after(tok, p->prompt, reply)
                                          : input.ids(tok, p->prompt_messages, reply));
      } catch (const Error& e) {
        throw Error(fmt::format("preference pair {}: {}", p->origin, e.what()));
      }
    }
    return reward::left_pad(rows, device);
  };
  auto score = [&](const std::vector<const PreferenceText*>& pairs) {
    const auto [tc, mc] = batch_tensors(pairs, true);
    const auto [tr, mr] = batch_tensors(pairs, false);
    AutocastGuard ac(spec.precision.compute, device);
    return Scored{rm->forward(tc, mc).to(at::kFloat), rm->forward(tr, mr).to(at::kFloat)};
  };
  auto margins = [&](const std::vector<const PreferenceText*>& pairs) {
    std::vector<float> m;
    for (const auto* p : pairs) m.push_back(o.use_margin ? static_cast<float>(p->margin) : 0.0f);
    return at::tensor(m).to(device);
  };
  auto evaluate_pairs = [&]() {
    RmEval ev;
    if (eval.empty()) return ev;
    torch::NoGradGuard ng;
    const bool was = rm->is_training();
    rm->eval();
    // Each rank scores every W-th held-out pair; the sums are added over ranks.
    std::vector<const PreferenceText*> mine;
    for (size_t i = static_cast<size_t>(R); i < eval.size(); i += static_cast<size_t>(W)) mine.push_back(eval[i]);
    double correct = 0, loss = 0, diff = 0;
    for (size_t b = 0; b < mine.size(); b += static_cast<size_t>(o.batch_size)) {
      std::vector<const PreferenceText*> part(
          mine.begin() + b, mine.begin() + std::min(mine.size(), b + static_cast<size_t>(o.batch_size)));
      const auto s = score(part);
      const auto gap = s.chosen - s.rejected;
      correct += (gap > 0).sum().item<double>();
      loss += (-at::log_sigmoid(gap - margins(part))).sum().item<double>();
      diff += gap.sum().item<double>();
    }
    if (was) rm->train();
    const auto sums = d.sum({correct, loss, diff});
    correct = sums[0], loss = sums[1], diff = sums[2];
    ev.pairs = static_cast<int64_t>(eval.size());
    ev.accuracy = correct / ev.pairs;
    ev.loss = loss / ev.pairs;
    ev.margin_mean = diff / ev.pairs;
    return ev;
  };
  auto write_head = [&rm, &input](const std::string& dir) { reward::save_reward_head(rm, dir, input); };

  log::info("rm: {} steps of {} pairs ({} training pairs, {} held out), run '{}' -> {}", o.steps, o.batch_size,
            train.size(), eval.size(), job.run_name(), job.output_dir());
  install_stop_handlers();
  TrainResult result;
  const int64_t n = static_cast<int64_t>(train.size());
  EpochOrder order(n, static_cast<uint64_t>(spec.run.seed));
  while (state.step < o.steps) {
    const auto t0 = std::chrono::steady_clock::now();
    // The global batch is pairs [cursor, cursor + batch_size); rank R takes its slice and
    // divides by the global batch size, so the summed gradients are those of the whole batch.
    std::vector<const PreferenceText*> batch;
    for (int64_t i = R * local; i < (R + 1) * local; ++i)
      batch.push_back(train[static_cast<size_t>(order.at(state.cursor + i))]);
    state.cursor += o.batch_size;
    const double B = static_cast<double>(o.batch_size);
    const auto s = score(batch);
    const auto diff = s.chosen - s.rejected;
    auto loss = (-at::log_sigmoid(diff - margins(batch))).sum() / B;
    if (o.center_coef > 0) loss = loss + o.center_coef * (s.chosen + s.rejected).pow(2).sum() / B;
    (loss * opt.loss_multiplier(state)).backward();
    const auto r = opt.step(state);
    ++state.step;
    const auto sums = d.sum({loss.item<double>(), (diff > 0).sum().item<double>(), diff.sum().item<double>(),
                             ((s.chosen + s.rejected) / 2).sum().item<double>()});
    Metrics m = {{"rm/loss", sums[0]},
                 {"rm/accuracy", sums[1] / B},
                 {"rm/margin_mean", sums[2] / B},
                 {"rm/reward_mean", sums[3] / B},
                 {"lr", r.lr},
                 {"grad_norm", r.grad_norm},
                 {"skipped_steps", static_cast<double>(state.skipped_steps)},
                 {"time/train", seconds_since(t0)},
                 {"time/allreduce", r.sync.seconds},
                 {"time/allreduce_wait", r.sync.wait_seconds},
                 {"allreduce/megabytes", static_cast<double>(r.sync.bytes) / 1e6}};
    const bool last = state.step == o.steps;
    const bool eval_now = !eval.empty() && (last || (o.eval_every > 0 && state.step % o.eval_every == 0));
    if (eval_now) {
      const auto ev = evaluate_pairs();
      m.insert(m.end(),
               {{"eval/rm_accuracy", ev.accuracy}, {"eval/rm_loss", ev.loss}, {"eval/rm_margin_mean", ev.margin_mean}});
    }
    job.log_metrics(state.step, m);
    if (state.step % o.log_every == 0 || last || eval_now)
      log::info("{}", console_line(fmt::format("rm step {}/{}", state.step, o.steps), m,
                                   {{"loss", "rm/loss"},
                                    {"acc", "rm/accuracy"},
                                    {"lr", "lr"},
                                    {"gnorm", "grad_norm"},
                                    {"eval acc", "eval/rm_accuracy"},
                                    {"eval loss", "eval/rm_loss"}}));
    if (end_of_step(job, state, opt.optimizer(), o.steps, stop_after, "rm", result, write_head)) return result;
  }
  return finish_training(job, state, opt.optimizer(), write_head);
}

}  // namespace rlft::rl
