// Batched generation: left-padded prefill once per prompt, fan-out to G rows, decode with
// finished rows dropped from the batch and the cache.
#include "rollout/generator.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <tuple>

#include "core/error.h"
#include "rollout/logprobs.h"

namespace rlft::rollout {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// One token per row from weights [N, V]: the argmax when greedy, else draw_tokens with the
// rows' generators.
at::Tensor draw_rows(const at::Tensor& weights, std::vector<at::Generator>& gens, bool greedy) {
  return greedy ? weights.argmax(1) : draw_tokens(weights, gens.data());
}

}  // namespace

const char* finish_reason_name(FinishReason reason) {
  return reason == FinishReason::kStop ? "stop" : "length";
}

void GenerateOptions::validate(int64_t vocab_size, const std::string& prefix) const {
  RLFT_CHECK_AS(ConfigError, max_new_tokens >= 1, "{}.max_new_tokens = {}: must be >= 1", prefix, max_new_tokens);
  RLFT_CHECK_AS(ConfigError, max_batch_rows >= 1, "{}.max_batch_rows = {}: must be >= 1", prefix, max_batch_rows);
  RLFT_CHECK_AS(ConfigError, speculative_tokens >= 0 && speculative_tokens <= 15,
                "{}.speculative_tokens = {}: must be in 0..15 (0 = off)", prefix, speculative_tokens);
  for (int64_t id : stop_token_ids)
    RLFT_CHECK_AS(ConfigError, id >= 0 && id < vocab_size,
                  "{}.stop_token_ids: unknown stop token {}: not in the vocabulary (ids 0..{})", prefix, id,
                  vocab_size - 1);
  for (const auto& s : stop_strings)
    RLFT_CHECK_AS(ConfigError, !s.empty(), "{}.stop_strings: an empty stop string would stop at once", prefix);
  RLFT_CHECK_AS(ConfigError, stop_strings.empty() || static_cast<bool>(detokenize),
                "{}.stop_strings: given without a detokenizer (no tokenizer to turn ids into text)", prefix);
}

void check_requests(const std::vector<Request>& requests, int64_t context_tokens) {
  RLFT_CHECK(!requests.empty(), "generate: empty prompt list (nothing to generate)");
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    RLFT_CHECK(!r.prompt.empty(), "generate: prompt {} is empty (at least one token is needed)", i);
    RLFT_CHECK(static_cast<int64_t>(r.prompt.size()) < context_tokens,
               "generate: prompt {} has {} tokens, longer than the context allows (max_position_embeddings = {}, "
               "one position is needed for a new token)",
               i, r.prompt.size(), context_tokens);
    RLFT_CHECK(r.n_samples >= 1, "generate: request {} asks for n_samples = {}: must be >= 1", i, r.n_samples);
  }
}

Generator::Generator(policy::CausalLM model, StepRegistry steps) : model_(std::move(model)), steps_(std::move(steps)) {}

// The live batch of a generate() call: its rows with their cache, counts and generators.
struct Generator::Batch {
  Batch(const std::vector<Request>& requests, const GenerateOptions& options, const std::vector<int64_t>& stop_ids,
        std::vector<Group>& out, std::vector<std::vector<at::Tensor>>& prompt_routing)
      : requests(requests), options(options), stop_ids(stop_ids), out(out), prompt_routing(prompt_routing) {}

  // One live row.
  struct Row {
    size_t request = 0;  // index into requests
    int64_t sample = 0;
    Sample out;
    std::vector<at::Tensor> decode_routing;  // per fed token: M tensors [K]
  };

  const std::vector<Request>& requests;
  const GenerateOptions& options;
  const std::vector<int64_t>& stop_ids;
  std::vector<Group>& out;

  std::vector<std::vector<at::Tensor>>& prompt_routing;  // per request: M tensors [P, K]
  std::vector<Row> rows;                                 // N live rows
  std::vector<at::Generator> gens;
  std::unique_ptr<policy::KvCache> cache;
  StepContext ctx;  // penalty counts [N, V], when the chain needs them

  // The first vocab_limit columns of logits [..., V], a view: as if the others were -inf.
  at::Tensor limited(const at::Tensor& logits) const {
    const int64_t V = logits.size(-1);
    return options.vocab_limit > 0 && options.vocab_limit < V ? logits.narrow(-1, 0, options.vocab_limit) : logits;
  }
  StepContext limited_context() const {
    StepContext c = ctx;
    if (ctx.seen_counts.defined()) {
      c.seen_counts = limited(ctx.seen_counts);
      c.generated_counts = limited(ctx.generated_counts);
    }
    return c;
  }

  // Appends a token to a row; true when the row is finished (its finish reason set).
  bool push(Row& row, int64_t tok, float logprob, int64_t context) const {
    row.out.tokens.push_back(tok);
    row.out.logprobs.push_back(logprob);
    if (std::find(stop_ids.begin(), stop_ids.end(), tok) != stop_ids.end()) {
      row.out.finish = FinishReason::kStop;
      return true;
    }
    if (!options.stop_strings.empty()) {
      const std::string text = options.detokenize(row.out.tokens);
      for (const auto& s : options.stop_strings)
        if (text.find(s) != std::string::npos) {
          row.out.finish = FinishReason::kStop;
          return true;
        }
    }
    const int64_t total = static_cast<int64_t>(requests[row.request].prompt.size() + row.out.tokens.size());
    if (static_cast<int64_t>(row.out.tokens.size()) >= options.max_new_tokens || total >= context) {
      row.out.finish = FinishReason::kLength;
      return true;
    }
    return false;
  }

  // Assembles a finished row's sample into its group.
  void finish(Row& row) {
    if (options.detokenize) {
      row.out.text = options.detokenize(row.out.tokens);
      for (const auto& s : options.stop_strings) {
        const auto at = row.out.text.find(s);
        if (at != std::string::npos) row.out.text.resize(at);
      }
    }
    if (options.record_routing) {
      const auto& pr = prompt_routing[row.request];
      for (size_t m = 0; m < pr.size(); ++m) {
        std::vector<at::Tensor> parts{pr[m]};
        for (const auto& step : row.decode_routing) parts.push_back(step[m].unsqueeze(0));
        parts.push_back(parts.back().narrow(0, parts.back().size(0) - 1, 1));  // the unfed last token
        row.out.routing.push_back(at::cat(parts, 0));
      }
    }
    out[row.request].samples[static_cast<size_t>(row.sample)] = std::move(row.out);
  }

  // Pushes one token per row (tokens, logprobs [N] on the CPU), assembles the rows that
  // finish, and returns the indices of the others.
  std::vector<int64_t> push_all(const at::Tensor& tokens, const at::Tensor& logprobs, int64_t context) {
    std::vector<int64_t> keep;
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto at = static_cast<int64_t>(i);
      if (push(rows[i], tokens[at].item<int64_t>(), logprobs[at].item<float>(), context))
        finish(rows[i]);
      else
        keep.push_back(at);
    }
    return keep;
  }

  // Keeps rows `keep` (ascending indices into rows) in the rows, generators, cache and
  // counts, and returns their new order on `device`: a kept row stays in its place and each
  // place freed below the new end takes a kept row from past it, so the cache moves only
  // those rows (KvCache::select_rows in place) instead of copying itself.
  at::Tensor keep_rows(const std::vector<int64_t>& keep, at::Device device) {
    const size_t n = keep.size();
    std::vector<bool> kept(rows.size(), false);
    for (int64_t i : keep) kept[static_cast<size_t>(i)] = true;
    std::vector<int64_t> order(n);
    size_t from = n;  // next kept row past the new end
    for (size_t j = 0; j < n; ++j) {
      if (kept[j]) {
        order[j] = static_cast<int64_t>(j);
        continue;
      }
      while (!kept[from]) ++from;
      order[j] = static_cast<int64_t>(from++);
    }
    std::vector<Row> kept_rows;
    std::vector<at::Generator> kept_gens;
    for (int64_t i : order) {
      kept_rows.push_back(std::move(rows[static_cast<size_t>(i)]));
      kept_gens.push_back(gens[static_cast<size_t>(i)]);
    }
    rows = std::move(kept_rows);
    gens = std::move(kept_gens);
    const auto idx = at::tensor(order, at::TensorOptions().dtype(at::kLong)).to(device);
    cache->select_rows(idx);
    if (ctx.seen_counts.defined()) {
      ctx.seen_counts = ctx.seen_counts.index_select(0, idx);
      ctx.generated_counts = ctx.generated_counts.index_select(0, idx);
    }
    return idx;
  }

  // Adds tokens [N] (on the device) to the rows' penalty counts.
  void count(const at::Tensor& tokens) {
    if (!ctx.seen_counts.defined()) return;
    const auto one = at::ones({tokens.size(0), 1}, ctx.seen_counts.options());
    ctx.seen_counts.scatter_add_(1, tokens.unsqueeze(1), one);
    ctx.generated_counts.scatter_add_(1, tokens.unsqueeze(1), one);
  }

  // Moves `other`'s rows after this batch's (cache, counts and generators too).
  void append(Batch&& other) {
    for (auto& r : other.rows) rows.push_back(std::move(r));
    gens.insert(gens.end(), other.gens.begin(), other.gens.end());
    if (!cache)
      cache = std::move(other.cache);
    else
      cache->append_rows(*other.cache);
    if (ctx.seen_counts.defined() && other.ctx.seen_counts.defined()) {
      ctx.seen_counts = at::cat({ctx.seen_counts, other.ctx.seen_counts});
      ctx.generated_counts = at::cat({ctx.generated_counts, other.ctx.generated_counts});
    } else if (other.ctx.seen_counts.defined()) {
      ctx = other.ctx;
    }
  }
};

// What prefilling requests [begin, end) gives: their rows (G per prompt, in request order)
// in a batch of their own whose cache still holds one row per prompt.
struct Generator::Prefill {
  at::Tensor logits;        // [P', V] next-token logits of each prompt
  at::Tensor tokens, mask;  // [P', L] the left-padded prompts
  at::Tensor hidden;        // [P', L, D] after model.norm (when asked)
  at::Tensor fan_index;     // [N] row → prompt
};

Generator::Prefill Generator::prefill(Batch& batch, size_t begin, size_t end, const SamplingChain& chain,
                                      bool want_hidden, GenerateStats& stats) {
  const auto& requests = batch.requests;
  const auto& options = batch.options;
  const auto device = model_->options().device;
  const auto long_opts = at::TensorOptions().dtype(at::kLong);
  const int64_t n_prompts = static_cast<int64_t>(end - begin);
  int64_t L = 0;
  for (size_t r = begin; r < end; ++r) L = std::max<int64_t>(L, static_cast<int64_t>(requests[r].prompt.size()));
  auto tokens = at::zeros({n_prompts, L}, long_opts);  // [P', L]
  auto mask = at::zeros({n_prompts, L}, long_opts);    // [P', L]
  for (int64_t p = 0; p < n_prompts; ++p) {
    const auto& prompt = requests[begin + static_cast<size_t>(p)].prompt;
    const int64_t n = static_cast<int64_t>(prompt.size());
    tokens[p].narrow(0, L - n, n).copy_(at::tensor(prompt, long_opts));
    mask[p].narrow(0, L - n, n).fill_(1);
    stats.prefill_tokens += n;
  }
  const auto t0 = Clock::now();
  Prefill out;
  batch.cache = model_->make_cache(n_prompts);
  out.tokens = tokens.to(device);
  out.mask = mask.to(device);
  policy::ForwardInputs in;
  in.tokens = out.tokens;
  in.attention_mask = out.mask;
  in.cache = batch.cache.get();
  in.logits = policy::LogitsScope::kLast;
  in.record_routing = options.record_routing;
  in.return_hidden = want_hidden;
  auto fo = model_->forward(in);
  out.logits = fo.logits.select(1, 0);  // [P', V] float32
  out.hidden = fo.hidden;
  stats.prefill_seconds += seconds_since(t0);

  // Fan out: prompt p → its n_samples rows.
  std::vector<int64_t> fan;
  for (int64_t p = 0; p < n_prompts; ++p) {
    const size_t r = begin + static_cast<size_t>(p);
    batch.out[r].request_id = requests[r].id;
    batch.out[r].prompt = requests[r].prompt;
    batch.out[r].samples.resize(static_cast<size_t>(requests[r].n_samples));
    for (int64_t s = 0; s < requests[r].n_samples; ++s) {
      fan.push_back(p);
      batch.rows.push_back(Batch::Row{r, s, {}, {}});
      batch.gens.push_back(make_row_generator(options.seed, requests[r].id, static_cast<uint64_t>(s)));
    }
    // Prompt routing: M tensors [P, K] (the real positions of the padded row).
    if (options.record_routing) {
      const int64_t n = static_cast<int64_t>(requests[r].prompt.size());
      for (const auto& routing : fo.routing)
        batch.prompt_routing[r].push_back(routing[p].narrow(0, L - n, n).to(at::kCPU));
    }
  }
  out.fan_index = at::tensor(fan, long_opts).to(device);
  if (chain.needs_counts()) {
    batch.ctx.seen_counts = at::zeros({static_cast<int64_t>(batch.rows.size()), model_->config().vocab_size},
                                      at::TensorOptions().dtype(at::kFloat).device(device));
    batch.ctx.generated_counts = at::zeros_like(batch.ctx.seen_counts);
    for (size_t i = 0; i < batch.rows.size(); ++i) {
      const auto ids = at::tensor(requests[batch.rows[i].request].prompt, long_opts).to(device);
      batch.ctx.seen_counts[static_cast<int64_t>(i)].index_add_(
          0, ids, at::ones({ids.size(0)}, batch.ctx.seen_counts.options()));
    }
  }
  return out;
}

std::vector<Group> Generator::generate(const std::vector<Request>& requests, const SamplingOptions& sampling,
                                       const GenerateOptions& options, GenerateStats* stats) {
  const auto& config = model_->config();
  options.validate(config.vocab_size);
  const SamplingChain chain(sampling, steps_);
  if (options.speculative_tokens > 0) {
    RLFT_CHECK_AS(ConfigError, model_->can_draft(),
                  "generate.speculative_tokens = {}: the model has no MTP module to draft with "
                  "(num_nextn_predict_layers = {}{}); set it to 0",
                  options.speculative_tokens, config.num_nextn_predict_layers,
                  config.num_nextn_predict_layers > 0 ? ", but it was loaded without its MTP modules" : "");
    RLFT_CHECK_AS(ConfigError, !chain.needs_counts(),
                  "generate.speculative_tokens = {}: not with repetition_penalty or presence_penalty (they change "
                  "the distribution after every drafted token); turn them off or set speculative_tokens to 0",
                  options.speculative_tokens);
  }
  check_requests(requests, config.max_position_embeddings);
  std::vector<int64_t> stop_ids = options.stop_token_ids;
  if (options.use_model_eos)
    for (int64_t id : config.eos_token_id)
      if (std::find(stop_ids.begin(), stop_ids.end(), id) == stop_ids.end()) stop_ids.push_back(id);

  // No-grad rather than inference mode: the recorded routing tensors are fed to the
  // trainer's autograd forward, which may not save inference tensors.
  at::NoGradGuard no_grad;
  std::vector<Group> out(requests.size());
  GenerateStats local;
  std::vector<std::vector<at::Tensor>> prompt_routing(requests.size());
  Batch batch(requests, options, stop_ids, out, prompt_routing);
  if (options.speculative_tokens > 0) {
    // Waves: requests enter together and the next wave starts when this one is empty.
    size_t begin = 0;
    while (begin < requests.size()) {
      const size_t end = admissible(requests, begin, 0, options.max_batch_rows);
      const auto pre = prefill(batch, begin, end, chain, true, local);
      const auto t0 = Clock::now();
      decode_speculative(batch, pre, chain, local);
      local.decode_seconds += seconds_since(t0);
      batch.rows.clear();
      batch.gens.clear();
      batch.cache.reset();
      begin = end;
    }
  } else {
    decode(batch, chain, local);
  }
  if (stats) *stats = local;
  return out;
}

// The end of the requests from `begin` that join `live` rows within max_rows (at least one
// request when nothing is live).
size_t Generator::admissible(const std::vector<Request>& requests, size_t begin, int64_t live, int64_t max_rows) {
  size_t end = begin;
  int64_t rows = live;
  while (end < requests.size() && (rows + requests[end].n_samples <= max_rows || (rows == 0 && end == begin)))
    rows += requests[end++].n_samples;
  return end;
}

// Plain decoding with continuous batching: one token per live row per step; finished rows
// leave at once, and waiting requests join as soon as their rows fit within
// max_batch_rows (prefilled on their own, their cache rows merged into the batch's), so
// nobody waits for the longest completion of a wave and no live row is prefilled again.
void Generator::decode(Batch& batch, const SamplingChain& chain, GenerateStats& stats) {
  const auto& options = batch.options;
  const auto& requests = batch.requests;
  const auto device = model_->options().device;
  const int64_t context = model_->config().max_position_embeddings;
  const double temperature = chain.options().temperature;
  at::Tensor fed;  // [N] each live row's last token, to feed next
  size_t next = 0;
  auto t0 = Clock::now();
  while (true) {
    // --- admission: prefill the requests that fit, draw their first tokens, merge ---------
    const size_t end = options.continuous_batching || batch.rows.empty()
                           ? admissible(requests, next, static_cast<int64_t>(batch.rows.size()), options.max_batch_rows)
                           : next;
    if (end > next) {
      if (!batch.rows.empty()) ++stats.joins;
      stats.decode_seconds += seconds_since(t0);
      Batch joining(requests, options, batch.stop_ids, batch.out, batch.prompt_routing);
      const auto pre = prefill(joining, next, end, chain, false, stats);
      t0 = Clock::now();
      joining.cache->select_rows(pre.fan_index);
      const auto logits = pre.logits.index_select(0, pre.fan_index);  // [N', V]
      const auto t_sample = Clock::now();
      const auto first = chain.sample(joining.limited(logits), joining.limited_context(), joining.gens);  // [N']
      const auto lp = token_logprobs(logits, first, temperature).to(at::kCPU);
      stats.sampling_seconds += seconds_since(t_sample);
      const auto first_cpu = first.to(at::kCPU);
      const auto keep = joining.push_all(first_cpu, lp, context);
      if (!keep.empty()) {
        const auto idx = joining.keep_rows(keep, device);
        const auto joined = first.index_select(0, idx);
        joining.count(joined);
        fed = fed.defined() ? at::cat({fed, joined}) : joined;
        batch.append(std::move(joining));
      }
      next = end;
    }
    if (batch.rows.empty()) {
      if (next >= requests.size()) break;
      continue;
    }

    // --- one decode step over every live row -------------------------------------------------
    policy::ForwardInputs step;
    step.tokens = fed.unsqueeze(1);  // [N, 1]
    step.cache = batch.cache.get();
    step.logits = policy::LogitsScope::kLast;
    step.record_routing = options.record_routing;
    policy::ForwardOutput so;
    {
      policy::ScopedForwardProfile profile(&stats.decode_parts);
      so = model_->forward(step);
    }
    stats.decode_tokens += fed.size(0);
    ++stats.decode_steps;
    const auto logits = so.logits.select(1, 0);  // [N, V]
    if (options.record_routing) {
      std::vector<at::Tensor> per_layer;
      for (const auto& r : so.routing) per_layer.push_back(r.select(1, 0).to(at::kCPU));  // [N, K]
      for (size_t i = 0; i < batch.rows.size(); ++i) {
        std::vector<at::Tensor> mine;
        for (const auto& t : per_layer) mine.push_back(t[static_cast<int64_t>(i)]);
        batch.rows[i].decode_routing.push_back(at::stack(mine, 0));  // [M, K]
      }
    }
    // Ids at or past vocab_limit (an embedding padded beyond the tokenizer) are never drawn;
    // like top-k, this truncation is outside the recorded log-probs' definition.
    const auto t_sample = Clock::now();
    const auto drawn = chain.sample(batch.limited(logits), batch.limited_context(), batch.gens);  // [N]
    const auto lp = token_logprobs(logits, drawn, temperature).to(at::kCPU);                      // [N]
    stats.sampling_seconds += seconds_since(t_sample);
    const auto keep = batch.push_all(drawn.to(at::kCPU), lp, context);
    if (keep.size() < batch.rows.size()) {  // the finished rows leave the batch and the cache
      if (keep.empty()) {
        batch.rows.clear();
        batch.gens.clear();
        batch.cache.reset();
        batch.ctx = StepContext{};
        fed = at::Tensor();
        continue;
      }
      fed = drawn.index_select(0, batch.keep_rows(keep, device));
    } else {
      fed = drawn;
    }
    batch.count(fed);
  }
  stats.decode_seconds += seconds_since(t0);
}

// Speculative decoding with the first MTP module as the drafter (see the top of generator.h).
// Each row carries a pending token (drawn, not yet fed) and the trunk's hidden states the
// draft module has not read yet: those of the tokens the last step kept, each with the token
// after it (left-padded across rows).
void Generator::decode_speculative(Batch& w, const Prefill& pre, const SamplingChain& chain, GenerateStats& stats) {
  const auto& options = w.options;
  const auto device = model_->options().device;
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(device);
  const int64_t context = model_->config().max_position_embeddings;
  const double temperature = chain.options().temperature;
  const bool greedy = chain.options().greedy();
  const int64_t k = options.speculative_tokens;
  const int64_t L = pre.tokens.size(1);
  const auto first_logits = pre.logits.index_select(0, pre.fan_index);  // [N, V]

  // The chain's distribution over logits [..., V] (one-hot at the argmax when greedy).
  auto distribution = [&](const at::Tensor& logits) {
    const auto l = w.limited(logits);
    const auto flat = l.reshape({-1, l.size(-1)});
    if (greedy) return at::zeros_like(flat).scatter_(1, flat.argmax(1, true), 1.0).view(l.sizes());
    return at::softmax(chain.apply(flat, {}), -1).view(l.sizes());
  };

  // The draft module's prefill: prompt position i reads the trunk's h_i and the token t_{i+1}.
  auto draft_cache = model_->make_draft_cache(pre.tokens.size(0));
  if (L > 1)
    model_->mtp_draft(pre.hidden.narrow(1, 0, L - 1), pre.tokens.narrow(1, 1, L - 1),
                      pre.mask.narrow(1, 0, L - 1).to(at::kBool), *draft_cache);
  w.cache->select_rows(pre.fan_index);
  draft_cache->select_rows(pre.fan_index);

  // Pending state [N, A, ·]: hidden states, the token after each, valid; the last column's
  // token is the row's pending token.
  const auto first = draw_rows(distribution(first_logits), w.gens, greedy);  // [N]
  at::Tensor pending_hidden = pre.hidden.index_select(0, pre.fan_index).narrow(1, L - 1, 1);
  at::Tensor pending_tokens = first.unsqueeze(1);
  at::Tensor pending_valid = at::ones({first.size(0), 1}, long_opts.dtype(at::kBool));
  auto drop_finished = [&](const std::vector<int64_t>& keep) {
    const auto idx = w.keep_rows(keep, device);
    draft_cache->select_rows(idx);
    pending_hidden = pending_hidden.index_select(0, idx);
    pending_tokens = pending_tokens.index_select(0, idx);
    pending_valid = pending_valid.index_select(0, idx);
  };
  {
    const auto keep =
        w.push_all(first.to(at::kCPU), token_logprobs(first_logits, first, temperature).to(at::kCPU), context);
    if (keep.empty()) return;
    if (keep.size() < w.rows.size()) drop_finished(keep);
  }

  while (!w.rows.empty()) {
    const int64_t N = static_cast<int64_t>(w.rows.size());
    const auto start = w.cache->next_positions().clone();  // [N] the pending token's position
    // --- draft k tokens: the module over the pending columns, then chained on its output ---
    std::vector<at::Tensor> drafts, draft_probs;  // k × [N], k × [N, V']
    at::Tensor out, logits;
    std::tie(out, logits) = model_->mtp_draft(pending_hidden, pending_tokens, pending_valid, *draft_cache);
    for (int64_t j = 0; j < k; ++j) {
      draft_probs.push_back(distribution(logits));
      drafts.push_back(draw_rows(draft_probs.back(), w.gens, greedy));
      if (j + 1 < k)
        std::tie(out, logits) = model_->mtp_draft(out.narrow(1, out.size(1) - 1, 1), drafts.back().unsqueeze(1),
                                                  at::ones({N, 1}, long_opts.dtype(at::kBool)), *draft_cache);
    }
    const auto drafted = at::stack(drafts, 1);  // [N, k]
    const auto q = at::stack(draft_probs, 1);   // [N, k, V']

    // --- verify: the pending token and the drafts in one forward -----------------------------
    policy::ForwardInputs step;
    step.tokens = at::cat({pending_tokens.narrow(1, pending_tokens.size(1) - 1, 1), drafted}, 1);  // [N, k+1]
    step.cache = w.cache.get();
    step.logits = policy::LogitsScope::kAll;
    step.return_hidden = true;
    step.record_routing = options.record_routing;
    policy::ForwardOutput so;
    {
      policy::ScopedForwardProfile profile(&stats.decode_parts);
      so = model_->forward(step);
    }
    ++stats.decode_steps;
    const auto t_sample = Clock::now();
    const auto p = distribution(so.logits);  // [N, k+1, V']
    // Draft j is kept with probability min(1, p_j(d_j) / q_j(d_j)), up to the first rejection.
    const auto p_drafted = p.narrow(1, 0, k).gather(2, drafted.unsqueeze(2)).squeeze(2).to(at::kCPU);  // [N, k]
    const auto q_drafted = q.gather(2, drafted.unsqueeze(2)).squeeze(2).to(at::kCPU);                  // [N, k]
    std::vector<int64_t> kept(static_cast<size_t>(N), 0);
    for (int64_t i = 0; i < N; ++i) {
      const auto u = at::empty({k}, at::kDouble).uniform_(0.0, 1.0, w.gens[static_cast<size_t>(i)]);
      int64_t a = 0;
      while (a < k && u[a].item<double>() * q_drafted[i][a].item<double>() < p_drafted[i][a].item<double>()) ++a;
      kept[static_cast<size_t>(i)] = a;
    }
    // The token after the kept drafts: from max(0, p_a − q_a) after a rejection, else p_k.
    const auto a_index = at::tensor(kept, long_opts);  // [N]
    const auto rows_index = at::arange(N, long_opts);  // [N]
    const auto p_at = p.index({rows_index, a_index});  // [N, V']
    const auto q_at =
        q.index({rows_index, a_index.clamp_max(k - 1)}).mul_((a_index < k).unsqueeze(1).to(q.scalar_type()));
    auto residual = (p_at - q_at).clamp_min_(0.0);
    residual = at::where(residual.sum(1, true) > 0, residual, p_at);  // p = q: nothing left to correct
    const auto bonus = draw_rows(residual, w.gens, greedy);           // [N]
    // This step's completion tokens: the kept drafts, then the bonus at column a.
    auto produced = at::cat({drafted, bonus.unsqueeze(1)}, 1);  // [N, k+1]
    produced.scatter_(1, a_index.unsqueeze(1), bonus.unsqueeze(1));
    const auto lp = token_logprobs(so.logits, produced, temperature).to(at::kCPU);  // [N, k+1]
    const auto produced_cpu = produced.to(at::kCPU);
    stats.sampling_seconds += seconds_since(t_sample);

    std::vector<at::Tensor> routing;  // per MoE layer [N, k+1, K] on the CPU
    for (const auto& r : so.routing) routing.push_back(r.to(at::kCPU));
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < N; ++i) {
      auto& row = w.rows[static_cast<size_t>(i)];
      const int64_t a = kept[static_cast<size_t>(i)];
      stats.drafted_tokens += k;
      stats.accepted_tokens += a;
      bool done = false;
      int64_t pushed = 0;
      while (pushed <= a && !done) {
        done = w.push(row, produced_cpu[i][pushed].item<int64_t>(), lp[i][pushed].item<float>(), context);
        ++pushed;
      }
      stats.decode_tokens += pushed;
      // Fed this step: the pending token and the drafts before the last token pushed.
      for (int64_t c = 0; c < pushed && options.record_routing; ++c) {
        std::vector<at::Tensor> mine;
        for (const auto& t : routing) mine.push_back(t[i][c]);
        row.decode_routing.push_back(at::stack(mine, 0));  // [M, K]
      }
      if (done)
        w.finish(row);
      else
        keep.push_back(i);
    }
    if (keep.empty()) break;
    // Rejected drafts leave both caches; the next pending columns are the kept tokens' trunk
    // hidden states (positions start .. start + a), each with the token after it.
    w.cache->forget(start + a_index + 1);
    draft_cache->forget(start);
    const int64_t A = a_index.max().item<int64_t>() + 1;
    const auto column = at::arange(A, long_opts).unsqueeze(0) - (A - 1 - a_index).unsqueeze(1);  // [N, A]
    pending_valid = column >= 0;
    const auto source = column.clamp_min(0);
    pending_tokens = produced.gather(1, source);
    pending_hidden = so.hidden.gather(1, source.unsqueeze(2).expand({N, A, so.hidden.size(2)}));
    if (static_cast<int64_t>(keep.size()) < N) drop_finished(keep);
  }
}

}  // namespace rlft::rollout
