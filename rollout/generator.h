#pragma once
// Batched generation on the policy with its KV cache.
//
// Continuous batching: requests join the live batch in order as soon as all their rows fit
// within GenerateOptions::max_batch_rows. Joining prompts are left-padded into one batch
// and prefilled ONCE each; their cache is fanned out to the request's n_samples rows with
// KvCache::select_rows (no G-fold prefill) and its rows appended to the live cache
// (KvCache::append_rows; positions, not slot order, decide what a row sees, so caches of
// different lengths join without re-prefilling anyone). Every decode step feeds one token
// per live row; rows that finish (a stop token, a stop string, max_new_tokens or the
// context length) leave the batch and the cache at once, and their room goes to the next
// waiting request. With continuous_batching off (and for speculative rollout), requests
// enter in waves: the next wave starts when the batch is empty.
//
// Randomness: row (request r, sample s) draws from its own generator seeded from
// (seed, Request::id, s) (sampling.h), so a completion does not depend on which other
// requests share its batch (up to the last-ulp effects of batched kernels on the logits).
//
// Log-probs: Sample::logprobs[i] = token_logprobs(logits, token_i, T) (logprobs.h): the
// policy at the sampling temperature, before penalties and truncation, in fp32.
//
// Speculative rollout (GenerateOptions::speculative_tokens = k): each step the first MTP
// module drafts k tokens (chained on its own output, with its own cache), the policy reads
// the pending token and the drafts in one forward, and draft j is kept with probability
// min(1, p_j(d)/q_j(d)); the first rejected one is replaced by a draw from the residual
// max(0, p_j − q_j), and when all are kept one more token comes from p_{k+1} (Leviathan et
// al. 2023, "Fast Inference from Transformers via Speculative Decoding"; Chen et al. 2023).
// p and q are the sampling chain's distributions, so completions follow the policy's exact
// distribution; the cache forgets rejected slots by position (KvCache::forget).
//
// Legend: N live rows, P prompt tokens, C completion tokens, V vocabulary, M trunk MoE
// layers, K experts per token.

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "policy/causal_lm.h"
#include "policy/forward_profile.h"
#include "rollout/sampling.h"

namespace rlft::rollout {

struct Request {
  std::vector<int64_t> prompt;  ///< token ids, at least one, shorter than the context
  int64_t n_samples = 1;        ///< G completions of this prompt (>= 1)
  uint64_t id = 0;              ///< seeds the rows' generators (with the run seed and sample index)
};

enum class FinishReason { kStop, kLength };
/// "stop" | "length".
const char* finish_reason_name(FinishReason reason);

struct GenerateOptions {
  /// Largest number of new tokens per completion (>= 1).
  int64_t max_new_tokens = 64;
  /// Token ids that end a completion (kept as its last token). Empty: the model's
  /// eos_token_id when use_model_eos.
  std::vector<int64_t> stop_token_ids;
  /// Add the model config's eos_token_id to stop_token_ids.
  bool use_model_eos = true;
  /// Strings that end a completion once its detokenised text contains one (needs
  /// `detokenize`); Sample::text is cut before the stop string.
  std::vector<std::string> stop_strings;
  /// ids → text, for stop strings and Sample::text; may be empty when neither is needed.
  std::function<std::string(const std::vector<int64_t>&)> detokenize;
  /// Record the experts every token was routed to (Sample::routing).
  bool record_routing = false;
  /// Rows (samples) decoded together at most (>= 1); a request's rows always enter together.
  int64_t max_batch_rows = 64;
  /// Waiting requests join the live batch as soon as their rows fit (continuous batching);
  /// off: in waves, the next starting when the batch is empty. Speculative rollout runs in
  /// waves.
  bool continuous_batching = true;
  /// Run seed for the row generators.
  uint64_t seed = 0;
  /// Ids >= this are never sampled (a model vocabulary padded past its tokenizer's ids);
  /// 0 = no limit. Like top-k, outside the recorded log-probs' definition.
  int64_t vocab_limit = 0;
  /// Speculative rollout: tokens the model's MTP module drafts per step (0 = off, at most
  /// 15), checked by one forward of the policy and kept by the rejection rule, so samples
  /// and log-probs are the policy's as without it. Needs a model with an MTP module and no
  /// repetition or presence penalty.
  int64_t speculative_tokens = 0;

  /// Throws rlft::ConfigError naming `prefix`.option. `vocab_size` bounds stop_token_ids.
  void validate(int64_t vocab_size, const std::string& prefix = "generate") const;
};

struct Sample {
  std::vector<int64_t> tokens;  ///< C completion ids (a stop token included)
  std::vector<float> logprobs;  ///< C, logprobs.h's quantity for each completion token
  FinishReason finish = FinishReason::kLength;
  std::string text;  ///< detokenised completion (when GenerateOptions::detokenize)
  /// Routing for replay over prompt + completion: M tensors [P + C, K] int64, the experts
  /// each token went to as the model consumed it. The last completion token is never fed
  /// to the model (its logits are not needed); its row repeats the one before it.
  std::vector<at::Tensor> routing;
};

struct Group {
  uint64_t request_id = 0;
  std::vector<int64_t> prompt;
  std::vector<Sample> samples;  ///< G, in sample order
  int64_t policy_version = 0;   ///< the weights that sampled it: after this many training steps
};

/// Decode-side counters of one generate() call (for benchmarks).
struct GenerateStats {
  int64_t prefill_tokens = 0;  ///< real prompt tokens fed in prefills
  /// Tokens decode steps produced: one per live row per step (the token it feeds), or with
  /// speculation the drafts a step kept plus one.
  int64_t decode_tokens = 0;
  int64_t decode_steps = 0;     ///< decode forwards (one per step, over every live row)
  int64_t joins = 0;            ///< prefills whose rows joined a batch with live rows (continuous batching)
  int64_t drafted_tokens = 0;   ///< speculative rollout: tokens the MTP module drafted
  int64_t accepted_tokens = 0;  ///< of drafted_tokens: kept by the rejection rule
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;          ///< decode forwards and sampling
  double sampling_seconds = 0.0;        ///< of decode_seconds: the sampling chain and the log-probs
  policy::ForwardProfile decode_parts;  ///< of decode_seconds: attention, feed-forward, LM head
  /// Adds `other`'s token and step counts (not its seconds: calls in turn add them, calls side
  /// by side take the longest).
  void add_counts(const GenerateStats& other) {
    prefill_tokens += other.prefill_tokens;
    decode_tokens += other.decode_tokens;
    decode_steps += other.decode_steps;
    joins += other.joins;
    drafted_tokens += other.drafted_tokens;
    accepted_tokens += other.accepted_tokens;
  }
  /// accepted_tokens / drafted_tokens (0 without drafts).
  double draft_acceptance() const {
    return drafted_tokens > 0 ? static_cast<double>(accepted_tokens) / static_cast<double>(drafted_tokens) : 0.0;
  }
};

class Generator {
 public:
  /// `model` runs under no-grad (not InferenceMode: Sample::routing must be usable in the
  /// trainer's autograd forward) and is not modified.
  explicit Generator(policy::CausalLM model, StepRegistry steps = builtin_sampling_steps());
  /// One Group per request, in request order. Throws ConfigError on bad options and
  /// rlft::Error on bad requests (empty list, empty or too long prompt), naming them.
  std::vector<Group> generate(const std::vector<Request>& requests, const SamplingOptions& sampling,
                              const GenerateOptions& options, GenerateStats* stats = nullptr);
  policy::CausalLM& model() { return model_; }

 private:
  struct Batch;
  struct Prefill;
  Prefill prefill(Batch& batch, size_t begin, size_t end, const SamplingChain& chain, bool want_hidden,
                  GenerateStats& stats);
  static size_t admissible(const std::vector<Request>& requests, size_t begin, int64_t live, int64_t max_rows);
  void decode(Batch& batch, const SamplingChain& chain, GenerateStats& stats);
  void decode_speculative(Batch& batch, const Prefill& prefill, const SamplingChain& chain, GenerateStats& stats);
  policy::CausalLM model_;
  StepRegistry steps_;
};

/// Checks the requests against the model's context; names the request and the limit.
void check_requests(const std::vector<Request>& requests, int64_t context_tokens);

}  // namespace rlft::rollout
