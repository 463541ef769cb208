#pragma once
// What the architecture files share (policy/arch/common.cpp): the config.json keys every
// decoder-only model has, RoPE and window options, the Qwen family's keys and layer plan,
// and the tensor-name rows of the layers the Hugging Face models have in common. Only the
// files in policy/arch/ include this.

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

/// The MoE block of config.moe: widths and routing (experts, top-K, scoring,
/// normalisation, scaling, groups); shared experts and router bias are the caller's.
MoeOptions routed_moe_options(const ModelConfig& config);

/// The GQA + (dense | softmax-routed MoE) layer of the Qwen family (Qwen2/3, their MoE
/// variants, Llama); `shared_expert`: Qwen2-MoE's gated shared expert.
LayerPlan qwen_family_plan(const ModelConfig& config, int64_t index, bool shared_expert);

// Tensor-name rows under the Hugging Face names (module path = checkpoint name); "#" is the
// layer (and expert) index.
/// The same name on both sides, for each `prefix` + `leaf`.
std::vector<TensorName> same_names(const std::string& prefix, const std::vector<std::string>& leaves);
/// Embedding, final norm, LM head, the two norms of each layer.
std::vector<TensorName> trunk_tensor_names();
/// GQA's self_attn: q/k/v/o projections and their biases, q_norm, k_norm.
std::vector<TensorName> gqa_tensor_names();
/// The dense SwiGLU mlp (gate/up/down projections and their biases).
std::vector<TensorName> mlp_tensor_names();
/// The MoE mlp's router weight and routed experts (mlp.gate, mlp.experts.#.*_proj).
std::vector<TensorName> routed_expert_tensor_names();

}  // namespace rlft::policy::arch
