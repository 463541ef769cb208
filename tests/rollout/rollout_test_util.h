#pragma once
// Shared helpers of the rollout tests: tiny models (tests/policy/tiny_models.h) and the
// training-side log-probs the invariant compares against.

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "rollout/generator.h"
#include "rollout/logprobs.h"
#include "tests/policy/tiny_models.h"
#include "tests/support/text_util.h"

namespace rlft::test {

/// The message of the rlft::Error fn throws ("" when it does not throw).
/// Prompts of the given lengths, random ids in [2, vocab).
inline std::vector<rollout::Request> make_requests(const std::vector<int64_t>& lengths, int64_t vocab,
                                                   int64_t n_samples) {
  std::vector<rollout::Request> out;
  for (size_t i = 0; i < lengths.size(); ++i) {
    const auto t = random_tokens(1, lengths[i], vocab, 100 + i);
    out.push_back({std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + lengths[i]), n_samples, i});
  }
  return out;
}

/// One training forward over prompt + completion (no cache, autograd-free): the log-probs
/// of the completion tokens [C]; `replay` uses the sample's recorded routing.
inline at::Tensor training_logprobs(policy::CausalLM& model, const std::vector<int64_t>& prompt,
                                    const rollout::Sample& sample, double temperature, bool replay) {
  std::vector<int64_t> seq = prompt;
  seq.insert(seq.end(), sample.tokens.begin(), sample.tokens.end());
  const auto tokens = at::tensor(seq, at::kLong).unsqueeze(0);
  std::vector<at::Tensor> routing;
  for (const auto& r : sample.routing) routing.push_back(r.unsqueeze(0));
  policy::ForwardInputs in;
  in.tokens = tokens;
  if (replay) in.replay_routing = &routing;
  const auto out = model->forward(in);
  const auto lp = rollout::shifted_token_logprobs(out.logits, tokens, temperature)[0];  // [P + C - 1]
  const int64_t C = static_cast<int64_t>(sample.tokens.size());
  return lp.narrow(0, lp.size(0) - C, C);
}

inline at::Tensor as_tensor(const std::vector<float>& v) {
  return at::tensor(v);
}

}  // namespace rlft::test
