#pragma once
// A preference reward model: a policy backbone of any architecture (policy/) whose final
// hidden state at the last token goes through a scalar head, r = w · h_last (+ b).
//
// On disk, a reward-model directory is the backbone's HF model directory (config.json,
// model.safetensors, tokenizer.json — what transformers and `rlft generate` open) plus
//   score.safetensors   score.weight [1, D] and score.bias [1] (float32)
//   reward_model.json   {"format": "rlft-reward-model-1", "pooling": "last_token", "append_eos": true,
//                        "input": "chat_template" | "text", "eos_token_id": …}
// Inputs are the conversation as the directory's chat template renders it (or, for a model
// trained without one, prompt text + completion text) + EOS, left-padded (RewardInput below);
// the pooled position is the last one (the EOS), real in every row.
//
// In a GRPO run the model is a RewardFn like any other (`type: reward_model`, `path: DIR`),
// scoring the whole batch in rows of `batch_size`.

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "policy/causal_lm.h"
#include "policy/tokenizer/chat_template.h"
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

/// What a reward model reads for a prompt and a reply, recorded in reward_model.json as
/// "input" (and "chat_template_kwargs"):
///   "chat_template"  the conversation — the prompt's messages, then the reply as the
///                    assistant's turn — rendered by the directory's chat template (no generation
///                    prompt), encoded without added special tokens (the template writes them),
///                    then EOS; as TRL's reward trainer applies the chat template
///   "text"           the prompt's text (one user message: its content; a longer chat: "role:
///                    content" lines), then the reply, encoded with the tokenizer's special
///                    tokens, then EOS (models trained without a template, and those from before
///                    the key)
/// Either way the ids are cut to the last `max_length` (0 = no limit). The EOS id the model was
/// trained with is recorded too ("eos_token_id"; before it, config.json's first eos_token_id).
struct RewardInput {
  std::optional<tokenizer::ChatTemplate> chat_template;  ///< none: "text"
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();
  int64_t eos_id = 0;
  int64_t max_length = 0;

  std::vector<int64_t> ids(const tokenizer::Tokenizer& tok, const std::vector<data::ChatMessage>& prompt,
                           const std::string& reply) const;
  /// A prompt already rendered as a policy saw it (a label on two stored rollouts): its text,
  /// then the reply, then EOS (special tokens added only in "text" mode).
  std::vector<int64_t> ids_after(const tokenizer::Tokenizer& tok, const std::string& rendered_prompt,
                                 const std::string& reply) const;
  /// How reward-model directory `dir` reads its inputs (its reward_model.json and, for
  /// "chat_template", its chat template: rlft::Error naming the directory when it has none);
  /// `eos_id` where reward_model.json records none.
  static RewardInput of_dir(const std::string& dir, int64_t eos_id, int64_t max_length);
};

/// Loads a reward-model directory (see the top of this file). Throws rlft::Error naming the
/// directory and the missing file or tensor.
RewardModel load_reward_model(const std::string& dir, const policy::ModelOptions& options);
/// Writes the head files into `dir`, an existing backbone directory (score.safetensors,
/// reward_model.json, which records how `input` reads: see RewardInput).
void save_reward_head(const RewardModel& model, const std::string& dir, const RewardInput& input);
/// Reads the head of `dir` into `model` (a resumed run).
void load_reward_head(RewardModel& model, const std::string& dir);

/// The text a "text"-mode reward model reads for a chat prompt (see RewardInput).
std::string reward_prompt_text(const std::vector<data::ChatMessage>& prompt);

/// Rows of ids left-padded with 0: tokens [B, T] int64 and attention mask [B, T] bool, on `device`.
std::pair<at::Tensor, at::Tensor> left_pad(const std::vector<std::vector<int64_t>>& rows, const at::Device& device);

/// Scores rows of ids (RewardInput::ids) in batches of `batch_size` (no grad).
std::vector<double> score_ids(RewardModel& model, const std::vector<std::vector<int64_t>>& rows, int64_t batch_size);

/// The `reward_model` reward: `path` (a reward-model directory), `batch_size` (32),
/// `max_length` (0 = no limit), `device` ("" = the run's).
std::unique_ptr<RewardFn> make_reward_model_reward(const std::string& name, const ConfigView& section,
                                                   const RewardContext& context);

}  // namespace rlft::reward
