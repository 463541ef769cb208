#pragma once
// The one definition of the per-token log-probs rlft records at rollout and the trainer
// recomputes, so both sides compute the same quantity:
//
//     logp(t_i) = log_softmax(logits_{i-1} / T)[t_i]      in float32
//
// — the policy at the sampling temperature T, BEFORE penalties and truncation (top-k,
// top-p, min-p). This is the usual choice for RL: the trainer's ratio π_θ/π_old compares the
// same smooth distribution on both sides, and truncation (which the trainer cannot see)
// does not enter. T = 0 (greedy) records T = 1.
//
// Legend: N rows, T tokens, V vocabulary.

#include <ATen/ATen.h>

namespace rlft::rollout {

/// logits [..., V] (any float dtype; computed in fp32), tokens [...] int64 → [...] float32.
/// `temperature` <= 0 means 1 (greedy decoding records the untempered policy).
at::Tensor token_logprobs(const at::Tensor& logits, const at::Tensor& tokens, double temperature);

/// For a training forward: logits [B, T, V] over prompt + completion and the same tokens
/// [B, T]; returns [B, T - 1], entry j = logp(tokens[:, j + 1]) from logits[:, j].
at::Tensor shifted_token_logprobs(const at::Tensor& logits, const at::Tensor& tokens, double temperature);

}  // namespace rlft::rollout
