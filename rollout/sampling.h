#pragma once
// Sampling steps: small pure transforms of next-token logits, composed as a chain
// (penalties → temperature → top-k → top-p → min-p), then a draw from the result.
//
// Each step is `apply(logits, context) → logits`, where removed tokens get -inf. The chain
// is built from SamplingOptions by a registry of named steps filled by
// register_builtin_sampling_steps(); a step whose option is at its neutral value is left out.
//
// Which distribution the recorded log-probs belong to: NOT the output of this chain. See
// rollout/logprobs.h: rlft records log_softmax(raw_logits / T) in fp32 (the policy at the
// sampling temperature, before penalties and truncation), which is what the trainer recomputes.
//
// Legend: N rows, V vocabulary.

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/registry.h"

namespace rlft {
class ConfigView;
}

namespace rlft::rollout {

struct SamplingOptions {
  /// Softmax temperature T >= 0; 0 = greedy (argmax; log-probs then use T = 1).
  double temperature = 1.0;
  /// Keep the k most likely tokens; 0 = off. Must be >= 0.
  int64_t top_k = 0;
  /// Nucleus: keep the smallest set of most likely tokens whose probability reaches top_p;
  /// in (0, 1], 1 = off (Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration").
  double top_p = 1.0;
  /// Keep tokens with probability >= min_p · max probability; in [0, 1), 0 = off
  /// (Nguyen et al. 2024, "Min P Sampling").
  double min_p = 0.0;
  /// CTRL repetition penalty (Keskar et al. 2019) on tokens already seen (prompt and
  /// completion): positive logits divided by it, negative multiplied; > 0, 1 = off.
  double repetition_penalty = 1.0;
  /// Subtracted from the logit of every token already generated (OpenAI's presence
  /// penalty); any finite value, 0 = off.
  double presence_penalty = 0.0;

  bool greedy() const { return temperature == 0.0; }
  /// Reads a `sampling:` section (every key optional); read_options() also validates.
  static SamplingOptions from_config(const ConfigView& section);
  /// The one set of sampling limits; throws rlft::OptionError naming the field.
  void validate() const;
};

/// What a step may look at besides the logits.
struct StepContext {
  /// [N, V] float: how often each token occurs in the row's prompt + completion so far.
  at::Tensor seen_counts;
  /// [N, V] float: how often each token occurs in the row's completion so far.
  at::Tensor generated_counts;
};

class SamplingStep {
 public:
  virtual ~SamplingStep() = default;
  virtual std::string name() const = 0;
  /// logits [N, V] float32 → [N, V] float32 (removed tokens = -inf). Pure: no state, no RNG.
  virtual at::Tensor apply(const at::Tensor& logits, const StepContext& context) const = 0;
};

/// A factory returns nullptr when the options leave its step neutral (not in the chain).
using StepFactory = std::function<std::unique_ptr<SamplingStep>(const SamplingOptions&)>;
using StepRegistry = Registry<StepFactory>;

/// repetition_penalty, presence_penalty, temperature, top_k, top_p, min_p.
void register_builtin_sampling_steps(StepRegistry& registry);
StepRegistry builtin_sampling_steps();

/// The order a chain applies its steps in.
const std::vector<std::string>& default_step_order();

class SamplingChain {
 public:
  /// Validates `options`, then builds the steps of `order` (names in `registry`) that the
  /// options turn on.
  SamplingChain(const SamplingOptions& options, const StepRegistry& registry,
                const std::vector<std::string>& order = default_step_order());
  /// Applies every step in order.
  at::Tensor apply(const at::Tensor& logits, const StepContext& context) const;
  /// One token per row [N] int64: argmax when greedy, else a draw from softmax(apply(logits))
  /// using row i's own generator gens[i] (so a row's draw does not depend on the others).
  /// Rows are sampled in chunks whose probabilities take about 32 MB (bounded memory at large
  /// vocabularies; the draws do not depend on the chunking).
  at::Tensor sample(const at::Tensor& logits, const StepContext& context, std::vector<at::Generator>& gens) const;
  std::vector<std::string> step_names() const;
  /// True when a step needs StepContext counts.
  bool needs_counts() const;
  const SamplingOptions& options() const { return options_; }

 private:
  /// sample() for rows whose generators are gens[0 .. N).
  at::Tensor sample_rows(const at::Tensor& logits, const StepContext& context, at::Generator* gens) const;
  SamplingOptions options_;
  std::vector<std::unique_ptr<SamplingStep>> steps_;
};

// The steps, usable on their own (each `apply` is the whole transform).
at::Tensor apply_temperature(const at::Tensor& logits, double temperature);
at::Tensor apply_top_k(const at::Tensor& logits, int64_t k);
at::Tensor apply_top_p(const at::Tensor& logits, double p);
at::Tensor apply_min_p(const at::Tensor& logits, double min_p);
at::Tensor apply_repetition_penalty(const at::Tensor& logits, const at::Tensor& seen_counts, double penalty);
at::Tensor apply_presence_penalty(const at::Tensor& logits, const at::Tensor& generated_counts, double penalty);

/// One token per row from weights [N, V] (>= 0, rows need not sum to 1; a zero weight is
/// never drawn), row i by inverse CDF at one uniform number from its own generator gens[i],
/// on the CPU in double precision (the same draws on every device). [N] int64 on weights'
/// device. SamplingChain::sample draws through it; so does speculative rollout.
at::Tensor draw_tokens(const at::Tensor& weights, at::Generator* gens);

/// A generator for row `sample` of request `request` under run seed `seed` (a SplitMix64
/// mix of the three), so a row's random stream does not depend on what it is batched with.
at::Generator make_row_generator(uint64_t seed, uint64_t request, uint64_t sample);

}  // namespace rlft::rollout
