#pragma once
// What the architecture files share (policy/arch/common.cpp): the config.json keys every
// decoder-only model has, RoPE and window options, the Qwen family's keys and layer plan.
// Only the files in policy/arch/ include this.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/arch/arch.h"

namespace rlft::policy::arch {

/// Reads the keys every decoder-only architecture has (vocab, widths, norms, RoPE, ids,
/// sliding window); `defaults` holds the class defaults.
void read_common(const KeySource& source, ModelConfig& config, const ModelConfig& defaults);
void write_common(const ModelConfig& config, nlohmann::json& json);
/// RoPE options for a rotation of width `dim`.
RopeOptions rope_options(const ModelConfig& config, int64_t dim, bool interleaved);
/// The sliding window of layer `index` (0 = full attention).
int64_t layer_window(const ModelConfig& config, int64_t index);

/// The MoE keys Qwen2-MoE and Qwen3-MoE share (num_experts, decoder_sparse_step,
/// mlp_only_layers, ...), with those classes' defaults for the ones given.
struct QwenMoeDefaults {
  int64_t moe_intermediate_size = 0;
  int64_t num_experts_per_tok = 0;
  int64_t num_experts = 0;
};
void read_qwen_moe(const KeySource& source, MoeConfig& moe, const QwenMoeDefaults& defaults);
void write_qwen_moe(const MoeConfig& moe, nlohmann::json& json);
/// The Qwen family's validate hook: the MoE keys, the expert count named num_experts.
void validate_qwen_moe(const ModelConfig& config, const ConfigCheck& check);

/// The GQA + (dense | softmax-routed MoE) layer of the Qwen family (Qwen2/3, their MoE
/// variants, Llama); `shared_expert`: Qwen2-MoE's gated shared expert.
LayerPlan qwen_family_plan(const ModelConfig& config, int64_t index, bool shared_expert);

}  // namespace rlft::policy::arch
