#pragma once
// Activation checkpointing of one decoder layer: the forward keeps only the layer's input
// [B, T, D] (and the outputs); backward runs the layer again with autograd on and
// back-propagates through that recomputation (PyTorch's reentrant torch.utils.checkpoint).
// A training forward then holds one [B, T, D] tensor per layer instead of every
// intermediate (attention scores, MoE expert activations), at the price of a second forward
// per layer in backward.
//
// The recomputation sees the same inputs, weights, router biases and autocast state as the
// first forward, so its routing and values are the same; the gradients equal those of the
// plain forward (tests/policy/layer_checkpoint_test.cpp). Differentiable outputs: the hidden
// states, and of an MoE layer the router scores and the Switch loss's mean probabilities
// (the balance losses' inputs). Chosen experts, loads and Switch fractions carry no gradient.
//
// Legend: B rows, T tokens, D model width.

#include "policy/decoder_layer.h"

namespace rlft::policy {

/// layer(x, in) with its activations recomputed in backward. Needs grad mode on and no KV
/// cache (a training forward); `x` need not require grad (the layer's weights still get theirs).
LayerOutput checkpointed_forward(DecoderLayerImpl& layer, const at::Tensor& x, const LayerInputs& in);

}  // namespace rlft::policy
