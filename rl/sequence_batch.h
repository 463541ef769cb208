#pragma once
// Training batches of prompt + completion sequences, and the per-token log-probs of their
// completions under the policy — the trainer's side of rollout/logprobs.h's definition.
//
// Layout: B rows, left-padded to T tokens (as rollout pads, so the training forward sees
// the same positions). Per-token values of the completions live in [B, T - 1]: entry j is
// about token j + 1, predicted from position j (shifted_token_logprobs's layout); `mask`
// marks the completion tokens that count. Outside a batch, per-token values are kept
// row-aligned, [B, C]: row i's C_i completion-token values in columns 0 .. C_i - 1, then
// zeros (C >= every C_i); scatter() and gather_into() convert between the two.
//
// Legend: B rows, T tokens, C completion tokens (the longest), K experts per token, M trunk
// MoE layers.

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "policy/causal_lm.h"

namespace rlft::rl {

struct Sequence {
  std::vector<int64_t> prompt;      ///< P >= 1 ids
  std::vector<int64_t> completion;  ///< C >= 1 ids
  /// Routing to replay: M tensors [P + C, K] (rollout::Sample::routing); empty = none.
  std::vector<at::Tensor> routing;
  /// Per completion token: counts in the loss (empty = all count).
  std::vector<uint8_t> token_mask;
};

struct SequenceBatch {
  at::Tensor tokens;                ///< [B, T] int64, left-padded with 0
  at::Tensor attention_mask;        ///< [B, T] bool
  at::Tensor mask;                  ///< [B, T - 1] float32: 1 on completion tokens that count
  at::Tensor completion;            ///< [B, T - 1] bool: 1 on every completion token
  std::vector<at::Tensor> routing;  ///< M tensors [B, T, K] (empty when no sequence has routing)
  std::vector<int64_t> prompt_lengths, completion_lengths;

  int64_t rows() const { return tokens.size(0); }
  /// Row-aligned values [B, C] (float32, CPU) → [B, T - 1] on the batch's device.
  at::Tensor scatter(const at::Tensor& aligned) const;
  /// The inverse: row i's C_i completion values of `values` [B, T - 1] into the first C_i
  /// columns of `aligned` [B, C] (float32, CPU; written in place).
  void gather_into(const at::Tensor& values, at::Tensor aligned) const;
};

/// Rows [begin, end) of a list of sequences.
struct RowRange {
  int64_t begin = 0, end = 0;
  int64_t rows() const { return end - begin; }
};

/// Builds a batch of `sequences`' rows `range` on `device` (a micro-batch of a step's
/// sequences, without copying them). Rows with routing must all have it (or none).
SequenceBatch make_sequence_batch(const std::vector<Sequence>& sequences, RowRange range, const at::Device& device);
/// All of `sequences`.
SequenceBatch make_sequence_batch(const std::vector<Sequence>& sequences, const at::Device& device);

struct PolicyForward {
  /// [B, T - 1] float32 log-probs of the next tokens (rollout/logprobs.h) on completion
  /// positions (SequenceBatch::completion), 0 elsewhere.
  at::Tensor logp;
  at::Tensor entropy;         ///< [B, T - 1] token entropies on completion positions (when asked for)
  policy::ForwardOutput out;  ///< router statistics, routing, aux losses; no logits (never [B, T, V])
};

struct PolicyForwardOptions {
  double temperature = 1.0;  ///< the sampling temperature (<= 0 means 1)
  bool replay_routing = false;
  bool entropy = false;
  bool mtp = false;  ///< also run the MTP modules: out.mtp_loss
  std::optional<policy::BalanceLossOptions> balance;
};

/// One training forward (autograd as the caller's mode says). The LM head runs fused with the
/// log-softmax, chunk by chunk over the completion tokens (CausalLMImpl::token_logprobs).
PolicyForward policy_forward(policy::CausalLM& model, const SequenceBatch& batch, const PolicyForwardOptions& options);

}  // namespace rlft::rl
