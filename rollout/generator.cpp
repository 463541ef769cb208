// Batched generation: left-padded prefill once per prompt, fan-out to G rows, decode with
// finished rows dropped from the batch and the cache.
#include "rollout/generator.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "core/error.h"
#include "rollout/logprobs.h"

namespace rlft::rollout {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// One live row of a wave.
struct Row {
  size_t request = 0;  // index into the wave's requests (absolute)
  int64_t sample = 0;
  Sample out;
  std::vector<at::Tensor> decode_routing;  // per step: M tensors [K]
};

}  // namespace

const char* finish_reason_name(FinishReason reason) {
  return reason == FinishReason::kStop ? "stop" : "length";
}

void GenerateOptions::validate(int64_t vocab_size, const std::string& prefix) const {
  RLFT_CHECK_AS(ConfigError, max_new_tokens >= 1, "{}.max_new_tokens = {}: must be >= 1", prefix, max_new_tokens);
  RLFT_CHECK_AS(ConfigError, max_batch_rows >= 1, "{}.max_batch_rows = {}: must be >= 1", prefix, max_batch_rows);
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

std::vector<Group> Generator::generate(const std::vector<Request>& requests, const SamplingOptions& sampling,
                                       const GenerateOptions& options, GenerateStats* stats) {
  const auto& config = model_->config();
  options.validate(config.vocab_size);
  const SamplingChain chain(sampling, steps_);
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
  size_t begin = 0;
  while (begin < requests.size()) {
    size_t end = begin + 1;
    int64_t rows = requests[begin].n_samples;
    while (end < requests.size() && rows + requests[end].n_samples <= options.max_batch_rows)
      rows += requests[end++].n_samples;
    run_wave(requests, begin, end, chain, options, stop_ids, out, local);
    begin = end;
  }
  if (stats) *stats = local;
  return out;
}

void Generator::run_wave(const std::vector<Request>& requests, size_t begin, size_t end, const SamplingChain& chain,
                         const GenerateOptions& options, const std::vector<int64_t>& stop_ids, std::vector<Group>& out,
                         GenerateStats& stats) {
  const auto& config = model_->config();
  const auto device = model_->options().device;
  const auto long_opts = at::TensorOptions().dtype(at::kLong);
  const int64_t n_prompts = static_cast<int64_t>(end - begin);
  const int64_t V = config.vocab_size;
  const int64_t context = config.max_position_embeddings;
  const double temperature = chain.options().temperature;

  // --- prefill: the wave's prompts, left-padded, once each ------------------------------------
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
  auto t0 = Clock::now();
  auto cache = model_->make_cache(n_prompts);
  policy::ForwardInputs in;
  in.tokens = tokens.to(device);
  in.attention_mask = mask.to(device);
  in.cache = cache.get();
  in.logits = policy::LogitsScope::kLast;
  in.record_routing = options.record_routing;
  auto fo = model_->forward(in);
  stats.prefill_seconds += seconds_since(t0);

  // --- fan out: prompt p → its n_samples rows -------------------------------------------------
  std::vector<int64_t> fan;
  std::vector<Row> rows;
  std::vector<at::Generator> gens;
  for (int64_t p = 0; p < n_prompts; ++p) {
    const size_t r = begin + static_cast<size_t>(p);
    out[r].request_id = requests[r].id;
    out[r].prompt = requests[r].prompt;
    out[r].samples.resize(static_cast<size_t>(requests[r].n_samples));
    for (int64_t s = 0; s < requests[r].n_samples; ++s) {
      fan.push_back(p);
      rows.push_back(Row{r, s, {}, {}});
      gens.push_back(make_row_generator(options.seed, requests[r].id, static_cast<uint64_t>(s)));
    }
  }
  // Prompt routing per prompt: M tensors [P_p, K] (the real positions of the padded row).
  std::vector<std::vector<at::Tensor>> prompt_routing(static_cast<size_t>(n_prompts));
  if (options.record_routing)
    for (int64_t p = 0; p < n_prompts; ++p) {
      const int64_t n = static_cast<int64_t>(requests[begin + static_cast<size_t>(p)].prompt.size());
      for (const auto& r : fo.routing)
        prompt_routing[static_cast<size_t>(p)].push_back(r[p].narrow(0, L - n, n).to(at::kCPU));
    }
  const auto fan_index = at::tensor(fan, long_opts).to(device);
  auto logits = fo.logits.select(1, 0).index_select(0, fan_index);  // [N, V] float32
  cache->select_rows(fan_index);

  StepContext ctx;
  if (chain.needs_counts()) {
    ctx.seen_counts =
        at::zeros({static_cast<int64_t>(rows.size()), V}, at::TensorOptions().dtype(at::kFloat).device(device));
    ctx.generated_counts = at::zeros_like(ctx.seen_counts);
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto ids = at::tensor(requests[rows[i].request].prompt, long_opts).to(device);
      ctx.seen_counts[static_cast<int64_t>(i)].index_add_(0, ids, at::ones({ids.size(0)}, ctx.seen_counts.options()));
    }
  }

  // --- decode -------------------------------------------------------------------------------
  t0 = Clock::now();
  while (!rows.empty()) {
    // Ids at or past vocab_limit (an embedding padded beyond the tokenizer) are never drawn;
    // like top-k, this truncation is outside the recorded log-probs' definition.
    // The first vocab_limit columns, a view: as if the others were -inf, without a copy.
    at::Tensor sample_from = logits;
    StepContext limited = ctx;
    if (options.vocab_limit > 0 && options.vocab_limit < logits.size(1)) {
      sample_from = logits.narrow(1, 0, options.vocab_limit);
      if (ctx.seen_counts.defined()) limited.seen_counts = ctx.seen_counts.narrow(1, 0, options.vocab_limit);
      if (ctx.generated_counts.defined())
        limited.generated_counts = ctx.generated_counts.narrow(1, 0, options.vocab_limit);
    }
    const auto t_sample = Clock::now();
    const auto next = chain.sample(sample_from, limited, gens);              // [N]
    const auto lp = token_logprobs(logits, next, temperature).to(at::kCPU);  // [N]
    stats.sampling_seconds += seconds_since(t_sample);
    const auto next_cpu = next.to(at::kCPU);
    std::vector<int64_t> keep;
    for (size_t i = 0; i < rows.size(); ++i) {
      auto& row = rows[i];
      const int64_t tok = next_cpu[static_cast<int64_t>(i)].item<int64_t>();
      row.out.tokens.push_back(tok);
      row.out.logprobs.push_back(lp[static_cast<int64_t>(i)].item<float>());
      bool done = false;
      if (std::find(stop_ids.begin(), stop_ids.end(), tok) != stop_ids.end()) {
        row.out.finish = FinishReason::kStop;
        done = true;
      }
      if (!done && !options.stop_strings.empty()) {
        const std::string text = options.detokenize(row.out.tokens);
        for (const auto& s : options.stop_strings)
          if (text.find(s) != std::string::npos) {
            row.out.finish = FinishReason::kStop;
            done = true;
          }
      }
      const int64_t total = static_cast<int64_t>(requests[row.request].prompt.size() + row.out.tokens.size());
      if (!done && (static_cast<int64_t>(row.out.tokens.size()) >= options.max_new_tokens || total >= context)) {
        row.out.finish = FinishReason::kLength;
        done = true;
      }
      if (!done) {
        keep.push_back(static_cast<int64_t>(i));
        continue;
      }
      // Finished: assemble the sample.
      if (options.detokenize) {
        row.out.text = options.detokenize(row.out.tokens);
        for (const auto& s : options.stop_strings) {
          const auto at = row.out.text.find(s);
          if (at != std::string::npos) row.out.text.resize(at);
        }
      }
      if (options.record_routing) {
        const auto& pr = prompt_routing[row.request - begin];
        for (size_t m = 0; m < pr.size(); ++m) {
          std::vector<at::Tensor> parts{pr[m]};
          for (const auto& step : row.decode_routing) parts.push_back(step[m].unsqueeze(0));
          parts.push_back(parts.back().narrow(0, parts.back().size(0) - 1, 1));  // the unfed last token
          row.out.routing.push_back(at::cat(parts, 0));
        }
      }
      out[row.request].samples[static_cast<size_t>(row.sample)] = std::move(row.out);
    }
    if (keep.empty()) break;
    if (keep.size() < rows.size()) {  // drop the finished rows from the batch and the cache
      std::vector<Row> kept_rows;
      std::vector<at::Generator> kept_gens;
      for (int64_t i : keep) {
        kept_rows.push_back(std::move(rows[static_cast<size_t>(i)]));
        kept_gens.push_back(gens[static_cast<size_t>(i)]);
      }
      rows = std::move(kept_rows);
      gens = std::move(kept_gens);
      const auto idx = at::tensor(keep, long_opts).to(device);
      cache->select_rows(idx);
      if (ctx.seen_counts.defined()) {
        ctx.seen_counts = ctx.seen_counts.index_select(0, idx);
        ctx.generated_counts = ctx.generated_counts.index_select(0, idx);
      }
    }
    const auto keep_idx = at::tensor(keep, long_opts);
    const auto fed = next_cpu.index_select(0, keep_idx).to(device);  // [N']
    if (ctx.seen_counts.defined()) {
      const auto one = at::ones({fed.size(0), 1}, ctx.seen_counts.options());
      ctx.seen_counts.scatter_add_(1, fed.unsqueeze(1), one);
      ctx.generated_counts.scatter_add_(1, fed.unsqueeze(1), one);
    }
    policy::ForwardInputs step;
    step.tokens = fed.unsqueeze(1);  // [N', 1]
    step.cache = cache.get();
    step.logits = policy::LogitsScope::kLast;
    step.record_routing = options.record_routing;
    policy::ForwardOutput so;
    {
      policy::ScopedForwardProfile profile(&stats.decode_parts);
      so = model_->forward(step);
    }
    stats.decode_tokens += fed.size(0);
    ++stats.decode_steps;
    logits = so.logits.select(1, 0);  // [N', V]
    if (options.record_routing) {
      std::vector<at::Tensor> per_layer;
      for (const auto& r : so.routing) per_layer.push_back(r.select(1, 0).to(at::kCPU));  // [N', K]
      for (size_t i = 0; i < rows.size(); ++i) {
        std::vector<at::Tensor> mine;
        for (const auto& t : per_layer) mine.push_back(t[static_cast<int64_t>(i)]);
        rows[i].decode_routing.push_back(at::stack(mine, 0));  // [M, K]
      }
    }
  }
  stats.decode_seconds += seconds_since(t0);
}

}  // namespace rlft::rollout
