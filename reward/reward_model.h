#pragma once
// A preference reward model: a policy backbone of any architecture (policy/) whose final
// hidden state at the last token goes through a scalar head, r = w · h_last (+ b).
//
// On disk, a reward-model directory is the backbone's HF model directory (config.json,
// model.safetensors, tokenizer.json — what transformers and `rlft generate` open) plus
//   score.safetensors   score.weight [1, D] and score.bias [1] (float32)
//   reward_model.json   {"format": "rlft-reward-model-1", "pooling": "last_token", "append_eos": true}
// Inputs are scored as prompt text + completion text + EOS, left-padded; the pooled position
// is the last one (the EOS), real in every row.
//
// In a GRPO run the model is a RewardFn like any other (`type: reward_model`, `path: DIR`),
// scoring the whole batch in rows of `batch_size`.

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "policy/causal_lm.h"
#include "policy/tokenizer/tokenizer.h"
#include "reward/reward.h"

namespace rlft::reward {

class RewardModelImpl : public torch::nn::Module {
 public:
  /// Wraps `backbone` (registered as "model"; its LM head and MTP modules are not used) with
  /// a fresh head: weight ~ N(0, initializer_range), bias 0, drawn from `seed`.
  RewardModelImpl(policy::CausalLM backbone, uint64_t seed);
  /// tokens [B, T] int64 left-padded, attention_mask [B, T] (1 = real) → rewards [B] float32.
  at::Tensor forward(const at::Tensor& tokens, const at::Tensor& attention_mask);

  policy::CausalLM backbone{nullptr};
  at::Tensor score_weight;  ///< [1, D]
  at::Tensor score_bias;    ///< [1]
};
TORCH_MODULE(RewardModel);

/// Loads a reward-model directory (see the top of this file). Throws rlft::Error naming the
/// directory and the missing file or tensor.
RewardModel load_reward_model(const std::string& dir, const policy::ModelOptions& options);
/// Writes the head files into `dir`, an existing backbone directory (score.safetensors,
/// reward_model.json).
void save_reward_head(const RewardModel& model, const std::string& dir);
/// Reads the head of `dir` into `model` (a resumed run).
void load_reward_head(RewardModel& model, const std::string& dir);

/// Token ids of prompt + completion + eos, cut to the last `max_length` ids (0 = no limit).
std::vector<int64_t> reward_input_ids(const tokenizer::Tokenizer& tok, const std::string& prompt,
                                      const std::string& completion, int64_t eos_id, int64_t max_length);

/// Rows of ids left-padded with 0: tokens [B, T] int64 and attention mask [B, T] bool, on `device`.
std::pair<at::Tensor, at::Tensor> left_pad(const std::vector<std::vector<int64_t>>& rows, const at::Device& device);

/// Scores texts in rows of `batch_size` (no grad). `prompts` and `completions` have N entries.
std::vector<double> score_texts(RewardModel& model, const tokenizer::Tokenizer& tok, int64_t eos_id,
                                const std::vector<std::string>& prompts, const std::vector<std::string>& completions,
                                int64_t batch_size, int64_t max_length);

/// The `reward_model` reward: `path` (a reward-model directory), `batch_size` (32),
/// `max_length` (0 = no limit), `device` ("" = the run's).
std::unique_ptr<RewardFn> make_reward_model_reward(const std::string& name, const ConfigView& section,
                                                   const RewardContext& context);

}  // namespace rlft::reward
