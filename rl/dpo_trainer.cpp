#include "rl/dpo_trainer.h"

#include <torch/nn/module.h>
#include <torch/utils.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "data/feedback_hash.h"
#include "policy/checkpoint/safetensors.h"
#include "policy/lora.h"
#include "rl/data_order.h"
#include "rl/expert_load.h"
#include "rl/optimizer_step.h"
#include "rl/precision.h"
#include "rl/sequence_batch.h"
#include "rl/step_log.h"
#include "rl/step_memory.h"

namespace rlft::rl {
namespace {

constexpr const char* kReferenceLogpsFile = "reference_logps.safetensors";

// A pair's token ids: the prompt (its end kept), each reply with EOS (its start kept).
struct EncodedPair {
  std::vector<int64_t> prompt, chosen, rejected;
};

EncodedPair encode_pair(const Job& job, const PreferenceText& p, const DpoOptions& o) {
  EncodedPair e;
  if (p.prompt_rendered) {  // a label on two rollouts: the prompt as the policy saw it
    const auto ids = job.tok().encode(p.prompt, job.chat_template() == nullptr);
    e.prompt.assign(ids.begin(), ids.end());
    e.chosen = job.encode_completion(p.chosen_reply);
    e.rejected = job.encode_completion(p.rejected_reply);
  } else {
    data::Example example;
    example.id = p.origin;
    example.messages = p.prompt_messages;
    e.prompt = job.encode_prompt(example);
    // Each reply as the policy writes it (under a chat template: its assistant turn).
    e.chosen = job.encode_reply(example, p.chosen_reply);
    e.rejected = job.encode_reply(example, p.rejected_reply);
  }
  RLFT_CHECK(!e.prompt.empty(), "preference pair {}: the prompt encodes to no tokens", p.origin);
  if (o.max_prompt_tokens > 0 && static_cast<int64_t>(e.prompt.size()) > o.max_prompt_tokens)
    e.prompt.erase(e.prompt.begin(), e.prompt.end() - o.max_prompt_tokens);
  for (auto* reply : {&e.chosen, &e.rejected})
    if (o.max_completion_tokens > 0 && static_cast<int64_t>(reply->size()) > o.max_completion_tokens)
      reply->resize(static_cast<size_t>(o.max_completion_tokens));
  return e;
}

// What the reference log-probs were computed for: a resumed run must see the same pairs.
std::string pairs_fingerprint(const std::vector<PreferenceText>& all) {
  std::string text = std::to_string(all.size());
  for (const auto& p : all) text += '\x1f' + p.prompt + '\x1e' + p.chosen + '\x1e' + p.rejected;
  return data::sha256_hex(text);
}

// The reply log-probs of pairs `idx` (one forward: the chosen rows, then the rejected ones).
struct ReplyLogps {
  at::Tensor chosen, rejected;                // [m] Σ log π over each reply's tokens
  at::Tensor chosen_tokens, rejected_tokens;  // [m]
  PolicyForward forward;
};

ReplyLogps reply_logps(policy::CausalLM& model, const std::vector<EncodedPair>& enc, const std::vector<int64_t>& idx,
                       const PolicyForwardOptions& fo, Compute compute, const at::Device& device) {
  std::vector<Sequence> rows;
  for (const auto i : idx)
    rows.push_back({enc[static_cast<size_t>(i)].prompt, enc[static_cast<size_t>(i)].chosen, {}, {}});
  for (const auto i : idx)
    rows.push_back({enc[static_cast<size_t>(i)].prompt, enc[static_cast<size_t>(i)].rejected, {}, {}});
  const auto batch = make_sequence_batch(rows, device);
  ReplyLogps r;
  {
    AutocastGuard ac(compute, device);
    r.forward = policy_forward(model, batch, fo);
  }
  const auto sums = (r.forward.logp * batch.mask).sum(1);
  const auto tokens = batch.mask.sum(1);
  const int64_t m = static_cast<int64_t>(idx.size());
  r.chosen = sums.narrow(0, 0, m);
  r.rejected = sums.narrow(0, m, m);
  r.chosen_tokens = tokens.narrow(0, 0, m);
  r.rejected_tokens = tokens.narrow(0, m, m);
  return r;
}

// [N, 2] float32 (chosen, rejected) reference log-probs of every pair: each rank computes every
// W-th pair, the sum over ranks fills the rest. The reference is the policy as it is now (the
// run's first step), with its adapters off under LoRA; gradients and dropout off.
at::Tensor compute_reference_logps(Job& job, const std::vector<EncodedPair>& enc, int64_t micro) {
  auto& model = job.model();
  auto& d = job.dist();
  const int64_t n = static_cast<int64_t>(enc.size());
  auto ref = at::zeros({n, 2}, at::kFloat);
  const auto t0 = std::chrono::steady_clock::now();
  {
    torch::NoGradGuard ng;
    const bool was = model->is_training();
    model->eval();
    policy::AdaptersDisabled base_only(*model);  // a no-op without adapters
    std::vector<int64_t> mine;
    for (int64_t i = d.rank(); i < n; i += d.world_size()) mine.push_back(i);
    for (size_t b = 0; b < mine.size(); b += static_cast<size_t>(micro)) {
      const std::vector<int64_t> part(mine.begin() + static_cast<int64_t>(b),
                                      mine.begin() + static_cast<int64_t>(std::min(mine.size(), b + micro)));
      const auto r = reply_logps(model, enc, part, {}, job.spec().precision.compute, job.device());
      ref.index_copy_(0, at::tensor(part, at::kLong), at::stack({r.chosen, r.rejected}, 1).to(at::kCPU, at::kFloat));
    }
    if (was) model->train();
  }
  std::vector<at::Tensor> all = {ref};
  d.all_reduce_sum(all);
  log::info("dpo: reference log-probs of {} pairs computed in {:.1f} s{}", n, seconds_since(t0),
            model->lora ? " (the policy with its adapters off)" : "");
  return all[0];
}

void save_reference_logps(const at::Tensor& ref, const std::string& fingerprint, const std::string& dir) {
  checkpoint::write_safetensors((std::filesystem::path(dir) / kReferenceLogpsFile).string(), {{"logps", ref}},
                                {{"format", "rlft.dpo_reference"}, {"pairs_sha256", fingerprint}});
}

// The checkpoint's reference log-probs (rank 0 reads, every rank gets them); an error when the
// pairs have changed since the run started.
at::Tensor load_reference_logps(Job& job, int64_t n, const std::string& fingerprint) {
  auto ref = at::zeros({n, 2}, at::kFloat);
  const auto path = (std::filesystem::path(job.resume_from()) / "trainer_state" / kReferenceLogpsFile).string();
  job.dist().on_main("read the reference log-probs", [&] {
    RLFT_CHECK(std::filesystem::exists(path), "{}: missing; a DPO checkpoint keeps its reference log-probs there",
               path);
    checkpoint::Metadata meta;
    const auto tensors = checkpoint::read_safetensors(path, {}, &meta);
    RLFT_CHECK(meta["pairs_sha256"] == fingerprint && tensors.count("logps") && tensors.at("logps").size(0) == n,
               "{}: computed for other preference pairs than the {} this run reads now (the store or the pairs "
               "file changed since the run started); resume with the same pairs, or start a new run",
               path, n);
    ref.copy_(tensors.at("logps"));
  });
  job.dist().broadcast(ref, 0);
  return ref;
}

// Sums over a batch's pairs, for the step's metrics.
struct PairSums {
  double loss = 0, sft = 0, chosen = 0, rejected = 0, correct = 0, logp_chosen = 0, logp_rejected = 0, tokens = 0;
  void add(const DpoLossOutput& out, const ReplyLogps& r, const at::Tensor& sft_terms) {
    loss += out.loss.detach().sum().item<double>();
    if (sft_terms.defined()) sft += sft_terms.detach().sum().item<double>();
    chosen += out.chosen_rewards.sum().item<double>();
    rejected += out.rejected_rewards.sum().item<double>();
    correct += (out.chosen_rewards > out.rejected_rewards).sum().item<double>();
    logp_chosen += r.chosen.detach().sum().item<double>();
    logp_rejected += r.rejected.detach().sum().item<double>();
    tokens += (r.chosen_tokens.sum() + r.rejected_tokens.sum()).item<double>();
  }
  std::vector<double> values() const {
    return {loss, sft, chosen, rejected, correct, logp_chosen, logp_rejected, tokens};
  }
};

DpoLossInput loss_input(const ReplyLogps& r, const at::Tensor& ref, const std::vector<int64_t>& idx) {
  DpoLossInput in{r.chosen, r.rejected, {}, {}, r.chosen_tokens, r.rejected_tokens};
  if (ref.defined()) {
    const auto rows = ref.index_select(0, at::tensor(idx, at::kLong)).to(r.chosen.device());
    in.ref_chosen_logp = rows.select(1, 0);
    in.ref_rejected_logp = rows.select(1, 1);
  }
  return in;
}

// Consecutive slices of at most `size` of `all`.
std::vector<std::vector<int64_t>> dpo_slices(const std::vector<int64_t>& all, int64_t size) {
  std::vector<std::vector<int64_t>> out;
  for (size_t b = 0; b < all.size(); b += static_cast<size_t>(size))
    out.emplace_back(all.begin() + static_cast<int64_t>(b),
                     all.begin() + static_cast<int64_t>(std::min(all.size(), b + static_cast<size_t>(size))));
  return out;
}

}  // namespace

TrainResult run_dpo(Job& job, const DpoOptions& o, const PreferenceSet& set, int64_t stop_after) {
  auto& spec = job.spec();
  check_precision(spec.precision, job.device());
  const auto& all = set.pairs;
  const uint64_t seed = static_cast<uint64_t>(spec.run.seed);
  const auto split = split_preferences(all, o.eval_fraction, seed);
  auto index_of = [&all](const PreferenceText* p) { return static_cast<int64_t>(p - all.data()); };
  std::vector<int64_t> train, eval;
  for (const auto* p : split.train) train.push_back(index_of(p));
  for (const auto* p : split.eval) eval.push_back(index_of(p));
  std::vector<EncodedPair> enc;
  enc.reserve(all.size());
  for (const auto& p : all) enc.push_back(encode_pair(job, p, o));

  const int64_t n = static_cast<int64_t>(train.size());
  const int64_t total =
      o.steps > 0 ? o.steps : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(o.epochs * n / o.batch_size)));
  auto& d = job.dist();
  const int64_t local = rank_share(d, o.batch_size, "dpo.batch_size"), R = d.rank(), W = d.world_size();
  const int64_t micro = o.micro_batch_pairs > 0 ? std::min(o.micro_batch_pairs, local) : local;
  const double B = static_cast<double>(o.batch_size);
  auto& model = job.model();
  model->train();
  OptimizerStep opt(trainable_parameters(*model), spec.precision, spec.optim, total, &d, spec.distributed.bucket_mb);
  TrainerState state = resume_trainer_state(job.resume_from(), d, opt);
  if (state.step > 0) log::info("dpo: resuming after step {} of {}", state.step, total);

  const auto fingerprint = pairs_fingerprint(all);
  at::Tensor ref;
  if (o.loss.uses_reference())
    ref = job.resume_from().empty() ? compute_reference_logps(job, enc, micro)
                                    : load_reference_logps(job, static_cast<int64_t>(all.size()), fingerprint);
  ExtraWriter state_extra;
  if (ref.defined())
    state_extra = [&ref, &fingerprint](const std::string& dir) { save_reference_logps(ref, fingerprint, dir); };
  if (state.step == 0)
    job.log_metrics(0, {{"data/pairs", static_cast<double>(all.size())},
                        {"data/pairs_held_out", static_cast<double>(eval.size())},
                        {"data/identical_pairs_skipped", static_cast<double>(set.identical)}});

  const bool balance = o.balance.switch_coef > 0 || o.balance.seq_alpha > 0;
  PolicyForwardOptions fo;
  if (balance) fo.balance = o.balance;
  const auto compute = spec.precision.compute;
  const auto device = job.device();
  const double beta = o.loss.beta_value();

  // Held-out pairs: each rank scores every W-th one; the sums are added over ranks.
  auto evaluate_pairs = [&]() {
    torch::NoGradGuard ng;
    const bool was = model->is_training();
    model->eval();
    std::vector<int64_t> mine;
    for (size_t i = static_cast<size_t>(R); i < eval.size(); i += static_cast<size_t>(W)) mine.push_back(eval[i]);
    PairSums s;
    for (const auto& part : dpo_slices(mine, micro)) {
      const auto r = reply_logps(model, enc, part, {}, compute, device);
      s.add(dpo_loss(loss_input(r, ref, part), o.loss), r, {});
    }
    if (was) model->train();
    const auto v = d.sum(s.values());
    const double k = static_cast<double>(eval.size());
    return Metrics{{"eval/loss", v[0] / k},
                   {"eval/rewards/chosen", v[2] / k},
                   {"eval/rewards/rejected", v[3] / k},
                   {"eval/rewards/margins", (v[2] - v[3]) / k},
                   {"eval/rewards/accuracies", v[4] / k}};
  };

  log::info(
      "dpo: {} loss (beta {}), {} steps of {} pairs ({} training pairs, {} held out, {:.2f} epochs), run '{}' -> {}",
      dpo_loss_name(o.loss.type), beta, total, o.batch_size, n, eval.size(),
      static_cast<double>(total * o.batch_size) / static_cast<double>(n), job.run_name(), job.output_dir());
  install_stop_handlers();
  EpochOrder order(n, seed);
  TrainResult result;
  while (state.step < total) {
    const auto t0 = std::chrono::steady_clock::now();
    start_step_memory(device);
    // The global batch is pairs [cursor, cursor + batch_size); rank R takes its slice and
    // divides by the global batch size, so the summed gradients are those of the whole batch.
    std::vector<int64_t> batch;
    for (int64_t i = R * local; i < (R + 1) * local; ++i)
      batch.push_back(train[static_cast<size_t>(order.at(state.cursor + i))]);
    state.cursor += o.batch_size;
    PairSums s;
    LoadAccumulator loads;
    for (const auto& part : dpo_slices(batch, micro)) {
      const auto r = reply_logps(model, enc, part, fo, compute, device);
      const auto out = dpo_loss(loss_input(r, ref, part), o.loss);
      auto loss = out.loss.sum() / B;
      at::Tensor sft;
      if (o.sft_weight > 0) {
        sft = -r.chosen / r.chosen_tokens.clamp_min(1.0);
        loss = loss + o.sft_weight * sft.sum() / B;
      }
      // The balance losses are means over this forward's tokens: weighted by its share of pairs.
      if (balance && r.forward.out.aux_loss.defined())
        loss = loss + (static_cast<double>(part.size()) / B) * r.forward.out.aux_loss;
      (loss * opt.loss_multiplier(state)).backward();
      s.add(out, r, sft);
      loads.add(r.forward.out.router);
    }
    const auto step = opt.step(state);
    loads.all_reduce(d);
    if (step.applied) update_trunk_router_bias(model, loads.loads(), o.router_bias_gamma);
    ++state.step;
    const auto v = d.sum(s.values());
    const double secs = seconds_since(t0);
    Metrics m = {{"loss", (v[0] + o.sft_weight * v[1]) / B},
                 {"dpo/loss", v[0] / B},
                 {"rewards/chosen", v[2] / B},
                 {"rewards/rejected", v[3] / B},
                 {"rewards/margins", (v[2] - v[3]) / B},
                 {"rewards/accuracies", v[4] / B},
                 {"logps/chosen", v[5] / B},
                 {"logps/rejected", v[6] / B},
                 {"lr", step.lr},
                 {"grad_norm", step.grad_norm},
                 {"skipped_steps", static_cast<double>(state.skipped_steps)},
                 {"loss_scale", spec.precision.loss_scaling ? opt.loss_scale().scale() : 1.0},
                 {"tokens_per_s", v[7] / std::max(secs, 1e-9)},
                 {"time/train", secs},
                 {"time/allreduce", step.sync.seconds},
                 {"time/allreduce_wait", step.sync.wait_seconds},
                 {"allreduce/megabytes", static_cast<double>(step.sync.bytes) / 1e6},
                 {"epoch", static_cast<double>(state.cursor) / static_cast<double>(n)}};
    if (o.sft_weight > 0) m.emplace_back("dpo/sft_loss", v[1] / B);
    loads.append_metrics(m);
    append_step_memory(m, d, device);
    const bool last = state.step == total;
    const bool eval_now = !eval.empty() && (last || (o.eval_every > 0 && state.step % o.eval_every == 0));
    if (eval_now)
      for (const auto& kv : evaluate_pairs()) m.push_back(kv);
    job.log_metrics(state.step, m);
    if (state.step % o.log_every == 0 || last || eval_now)
      log::info("{}", console_line(fmt::format("dpo step {}/{}", state.step, total), m,
                                   {{"loss", "loss"},
                                    {"margin", "rewards/margins"},
                                    {"acc", "rewards/accuracies"},
                                    {"lr", "lr"},
                                    {"gnorm", "grad_norm"},
                                    {"tok/s", "tokens_per_s"},
                                    {"peak MB", "memory/peak_rss_mb"},
                                    {"eval acc", "eval/rewards/accuracies"}}));
    if (end_of_step(job, state, opt.optimizer(), total, stop_after, "dpo", result, {}, state_extra)) return result;
  }
  return finish_training(job, state, opt.optimizer(), {}, state_extra);
}

}  // namespace rlft::rl
