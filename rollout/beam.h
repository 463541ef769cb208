#pragma once
// Beam search for evaluation (deterministic decoding), as Hugging Face's BeamSearchScorer:
// num_beams rows share one prefilled prompt; each step keeps the best 2·num_beams
// continuations of sum log p (fp32, T = 1), a continuation ending in a stop token becomes a
// finished hypothesis scored sum_logp / C^length_penalty (C: completion tokens, stop
// token included), the others refill the beams. Search ends when num_beams hypotheses are
// finished and either early_stopping is set or no live beam can still beat the worst of
// them (best live sum / C^length_penalty), or at max_new_tokens (live beams are then
// finished with reason "length").
//
// Legend: N = num_beams rows, V vocabulary.

#include <cstdint>
#include <string>
#include <vector>

#include "policy/causal_lm.h"
#include "rollout/generator.h"

namespace rlft::rollout {

struct BeamOptions {
  int64_t num_beams = 4;                ///< beams kept per step (>= 1; 1 = greedy)
  double length_penalty = 1.0;          ///< exponent of the length normalisation; > 0 favours longer
  bool early_stopping = false;          ///< stop as soon as num_beams hypotheses are finished
  int64_t max_new_tokens = 64;          ///< >= 1
  std::vector<int64_t> stop_token_ids;  ///< as GenerateOptions
  bool use_model_eos = true;
  int64_t num_return = 1;  ///< hypotheses returned, best first (1..num_beams)

  void validate(int64_t vocab_size, const std::string& prefix = "beam") const;
};

struct BeamHypothesis {
  std::vector<int64_t> tokens;  ///< completion ids
  std::vector<float> logprobs;  ///< per token, log_softmax(logits) (T = 1)
  double score = 0.0;           ///< sum(logprobs) / C^length_penalty
  FinishReason finish = FinishReason::kLength;
};

/// The best `num_return` hypotheses for `prompt`, best first.
std::vector<BeamHypothesis> beam_search(policy::CausalLM& model, const std::vector<int64_t>& prompt,
                                        const BeamOptions& options);

}  // namespace rlft::rollout
