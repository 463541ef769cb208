#pragma once
// Held-out evaluation: the policy answers the eval split (greedy by default, or k samples at
// a temperature) and the run's rewards score the answers.
//
//   accuracy   share of completions whose accuracy part (eval.accuracy_reward, default the
//              first reward) scores >= eval.accuracy_threshold          (pass@1 when sampled)
//   pass@k     share of prompts with at least one such completion among k samples

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "rl/job.h"

namespace rlft::rl {

struct EvalResult {
  int64_t prompts = 0;
  int64_t samples = 0;
  double accuracy = 0.0;
  double pass_at_k = 0.0;
  double reward_mean = 0.0;
  double response_length = 0.0;  ///< mean completion tokens
  double seconds = 0.0;
  std::vector<std::pair<std::string, double>> parts;  ///< "reward/<part>" means
  /// "eval/accuracy", "eval/pass@k", "eval/reward_mean", "eval/response_length", "eval/<part>".
  std::vector<std::pair<std::string, double>> metrics() const;
};

EvalResult evaluate(Job& job, const std::vector<data::Example>& examples, const EvalOptions& options,
                    int64_t default_max_new_tokens, uint64_t seed);

}  // namespace rlft::rl
