#include "rl/rm_trainer.h"

#include <torch/nn/module.h>
#include <torch/utils.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/sqlite.h"
#include "data/feedback.h"
#include "data/feedback_import.h"
#include "data/jsonl.h"
#include "data/store.h"
#include "reward/reward_model.h"
#include "rl/data_order.h"
#include "rl/optimizer_step.h"
#include "rl/precision.h"
#include "rl/step_log.h"
#include "rl/train_state.h"

namespace rlft::rl {
namespace {

std::string render(const data::Turns& t) {
  if (!t.is_chat()) return t.text;
  std::string out;
  for (const auto& m : t.messages) out += m.role + ": " + m.content + "\n";
  return out;
}

PreferenceText from_pair(const data::PreferencePair& p, const std::string& origin) {
  return {render(p.prompt), render(p.chosen), render(p.rejected), p.margin.value_or(0.0), origin};
}

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

std::vector<PreferenceText> load_preference_texts(const RmOptions& o, const std::string& store_path) {
  std::vector<PreferenceText> out;
  if (o.pairs != "store") {
    std::ifstream in(o.pairs);
    RLFT_CHECK(in.good(), "rm.pairs = {}: cannot read the file", o.pairs);
    const auto formats = data::builtin_preference_formats();
    const auto& format = formats.get(o.format);
    data::ImportOptions io;
    io.path = o.pairs;
    io.format = o.format;
    std::string line;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json row;
      try {
        row = nlohmann::json::parse(line);
      } catch (const nlohmann::json::parse_error& e) {
        throw data::InputError(o.pairs, n, 0, "", fmt::format("not JSON: {}", e.what()));
      }
      for (auto& p : format.parse(row, io, o.pairs, n)) {
        data::unify_turns(p);
        out.push_back(from_pair(p, fmt::format("{}:{}", o.pairs, n)));
      }
    }
    return out;
  }
  auto store = data::Store::open(store_path, false);
  data::FeedbackStore fb(store);
  data::PairFilter filter;
  filter.source_file = o.source_file;
  std::map<int64_t, data::PreferencePair> by_id;
  for (const auto& p : fb.pairs(filter)) {
    by_id[p.id] = p;
    out.push_back(from_pair(p, fmt::format("pair {}", p.id)));
  }
  // People's labels from `rlft serve`: each one a preference of its own.
  for (const auto& l : fb.labels()) {
    if (l.choice != "chosen" && l.choice != "rejected") continue;
    const bool first_wins = l.choice == "chosen";
    if (l.pair_id) {
      auto it = by_id.find(*l.pair_id);
      if (it == by_id.end()) continue;  // filtered out by source_file
      auto t = from_pair(it->second, fmt::format("label {}", l.id));
      if (!first_wins) std::swap(t.chosen, t.rejected);
      out.push_back(std::move(t));
    } else if (l.rollout_a && l.rollout_b) {
      sqlite::Statement q(store.db(), "SELECT prompt, completion FROM rollouts WHERE id = ?");
      std::string prompt, a, b;
      q.bind(1, *l.rollout_a);
      if (!q.step()) continue;
      prompt = q.column_text(0);
      a = q.column_text(1);
      sqlite::Statement q2(store.db(), "SELECT completion FROM rollouts WHERE id = ?");
      q2.bind(1, *l.rollout_b);
      if (!q2.step()) continue;
      b = q2.column_text(0);
      out.push_back({prompt, first_wins ? a : b, first_wins ? b : a, 0.0, fmt::format("label {}", l.id)});
    }
  }
  return out;
}

TrainResult run_rm(Job& job, const RmOptions& o, const std::vector<PreferenceText>& all, int64_t stop_after) {
  auto& spec = job.spec();
  RLFT_CHECK(all.size() >= 2,
             "rlft rm train: {} preference pairs; at least 2 are needed (import some with `rlft "
             "feedback import`, or label some in `rlft serve`)",
             all.size());
  check_precision(spec.precision, job.device());
  // Seeded split: the held-out pairs never reach the optimizer.
  const auto perm = data::epoch_order(static_cast<int64_t>(all.size()), static_cast<uint64_t>(spec.run.seed), -1);
  const int64_t n_eval = static_cast<int64_t>(std::floor(o.eval_fraction * static_cast<double>(all.size())));
  std::vector<const PreferenceText*> train, eval;
  for (size_t i = 0; i < perm.size(); ++i) (static_cast<int64_t>(i) < n_eval ? eval : train).push_back(&all[perm[i]]);
  RLFT_CHECK(!train.empty(), "rlft rm train: no training pairs left after holding out {}", n_eval);

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
  const int64_t eos = job.eos_id();
  const auto device = job.device();
  auto batch_tensors = [&](const std::vector<const PreferenceText*>& pairs, bool chosen) {
    std::vector<std::vector<int64_t>> rows;
    for (const auto* p : pairs)
      rows.push_back(reward::reward_input_ids(tok, p->prompt, chosen ? p->chosen : p->rejected, eos, o.max_length));
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
  auto write_head = [&rm](const std::string& dir) { reward::save_reward_head(rm, dir); };

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
