#include "rl/memory_estimate.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"

namespace rlft::rl {

namespace {

constexpr double kFloat = 4.0;            // bytes per float32 element
constexpr double kRuntime = 400.0 * 1e6;  // LibTorch, BLAS buffers, the tokenizer, the data: measured ~0.3-0.4 GB

// Float32 elements one decoder layer keeps for backward per token (linear in the tokens),
// and per token per key (the attention probabilities).
struct LayerElements {
  double per_token = 0, per_key = 0;
};

LayerElements layer_elements(const policy::ModelConfig& c) {
  const double D = static_cast<double>(c.hidden_size), H = static_cast<double>(c.num_attention_heads);
  LayerElements e;
  e.per_token = 6 * D;  // norms' inputs and outputs, residual sums
  if (c.mla) {
    const auto& m = *c.mla;
    const double qk = static_cast<double>(m.qk_nope_head_dim + m.qk_rope_head_dim);
    e.per_token +=
        static_cast<double>(m.q_lora_rank + m.kv_lora_rank) + 3 * H * qk + 2 * H * static_cast<double>(m.v_head_dim);
  } else {
    const double hd = static_cast<double>(c.head_dim > 0 ? c.head_dim : c.hidden_size / c.num_attention_heads);
    e.per_token += 3 * H * hd + 4 * static_cast<double>(c.num_key_value_heads) * hd;
  }
  e.per_key = 2 * H;  // scores and probabilities
  // The widest feed-forward (a dense layer or an MoE layer's K routed + shared experts).
  double ffn = 4 * static_cast<double>(c.intermediate_size);
  if (c.moe.n_routed_experts > 0) {
    const double shared = static_cast<double>(c.moe.n_shared_experts * c.moe.moe_intermediate_size +
                                              c.moe.shared_expert_intermediate_size);
    const double moe = 4 * static_cast<double>(c.moe.num_experts_per_tok * c.moe.moe_intermediate_size) + 4 * shared +
                       3 * static_cast<double>(c.moe.n_routed_experts);
    ffn = std::max(ffn, moe);
  }
  e.per_token += ffn;
  return e;
}

// Float32 elements of one token's keys and values in one layer's rollout KV cache.
double kv_elements(const policy::ModelConfig& c) {
  if (c.mla) return static_cast<double>(c.mla->kv_lora_rank + c.mla->qk_rope_head_dim);
  const double hd = static_cast<double>(c.head_dim > 0 ? c.head_dim : c.hidden_size / c.num_attention_heads);
  return 2 * static_cast<double>(c.num_key_value_heads) * hd;
}

std::string gb(double bytes) {
  return fmt::format("{:.2f} GB", bytes / 1e9);
}

}  // namespace

double MemoryEstimate::peak() const {
  const double work = rollout_beside ? activations + rollout : std::max(activations, rollout);
  return weights + gradients + moments + reference + published + work + runtime;
}

std::string MemoryEstimate::describe() const {
  const std::string async =
      published > 0 || rollout_beside ? fmt::format(" (beside training), published weights {}", gb(published)) : "";
  return fmt::format(
      "weights {}, gradients {}, AdamW moments {}, reference {}, activations {}, rollout {}{}, runtime {}: peak {}",
      gb(weights), gb(gradients), gb(moments), gb(reference), gb(activations), gb(rollout), async, gb(runtime),
      gb(peak()));
}

MemoryEstimate estimate_memory(const policy::ModelConfig& c, const MemoryWorkload& w) {
  MemoryEstimate e;
  e.weights = kFloat * static_cast<double>(w.n_params);
  e.gradients = kFloat * static_cast<double>(w.n_trainable);
  e.moments = 2 * kFloat * static_cast<double>(w.n_trainable);
  e.reference = w.reference ? e.weights : 0.0;
  e.runtime = kRuntime;

  const auto layer = layer_elements(c);
  const double tokens = static_cast<double>(w.forward_tokens), L = static_cast<double>(c.num_hidden_layers);
  const double per_token_layer = layer.per_token + layer.per_key * static_cast<double>(w.longest_sequence);
  const double D = static_cast<double>(c.hidden_size);
  const double kept = w.activation_checkpointing ? tokens * (L * D + per_token_layer) : tokens * L * per_token_layer;
  // The chunked head: a chunk's logits, log-softmax, probabilities and their gradient.
  const double head =
      4 * std::min(w.logits_chunk_mb * 1024 * 1024, kFloat * tokens * static_cast<double>(c.vocab_size));
  e.activations = kFloat * (kept + 3 * tokens * D) + head;

  const double rows = static_cast<double>(w.rollout_rows);
  e.rollout = kFloat * rows *
              (static_cast<double>(w.rollout_tokens) * L * kv_elements(c) + 3 * static_cast<double>(c.vocab_size));
  if (w.published_versions > 0) {
    e.rollout *= static_cast<double>(w.rollout_workers);
    e.rollout_beside = true;
    e.published = kFloat * static_cast<double>(w.n_trainable) * static_cast<double>(w.published_versions);
  }
  return e;
}

void check_fit(const MemoryEstimate& estimate, double available_bytes, const std::vector<std::string>& knobs) {
  if (estimate.peak() <= available_bytes) return;
  std::string lower;
  for (const auto& k : knobs) lower += (lower.empty() ? "" : ", ") + k;
  throw ConfigError(fmt::format(
      "this run would not fit: estimated peak memory {} ({}) exceeds the {} available. Lower one of: {}; or set "
      "memory.check_fit: false to try anyway",
      gb(estimate.peak()), estimate.describe(), gb(available_bytes), lower));
}

}  // namespace rlft::rl
