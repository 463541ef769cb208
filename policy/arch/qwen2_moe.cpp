// Qwen2MoeForCausalLM (transformers' qwen2_moe).
//   attention: GQA with q/k/v biases (qkv_bias, default true), o_proj without; rotate_half RoPE
//   mlp:       MoE when layer not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0,
//              else dense (intermediate_size) — softmax over all experts, top-K,
//              norm_topk_prob; a shared expert (shared_expert_intermediate_size) scaled by
//              sigmoid(shared_expert_gate(x))
//   window:    use_sliding_window / sliding_window on layers >= max_window_layers
#include "policy/arch/common.h"
#include "policy/config_source.h"

namespace rlft::policy {

namespace qwen2_moe_keys {  // named, not anonymous: the files of a unity batch share one translation unit

ModelConfig class_defaults() {  // Qwen2MoeConfig's defaults
  ModelConfig d;
  d.vocab_size = 151936;
  d.hidden_size = 2048;
  d.intermediate_size = 5632;
  d.num_hidden_layers = 24;
  d.num_attention_heads = 16;
  d.max_position_embeddings = 32768;
  d.rms_norm_eps = 1e-6;
  d.rope_theta = 10000.0;
  d.sliding_window = 4096;
  d.max_window_layers = 28;
  d.torch_dtype = "bfloat16";
  return d;
}

void read(const KeySource& s, ModelConfig& c) {
  arch::read_common(s, c, class_defaults());
  c.qkv_bias = s.get_bool("qkv_bias", true);
  c.o_bias = false;
  arch::read_qwen_moe(s, c.moe, {/*moe_intermediate_size=*/1408, /*num_experts_per_tok=*/4, /*num_experts=*/60});
  c.moe.shared_expert_intermediate_size = s.get_int("shared_expert_intermediate_size", 5632);
}

void write(const ModelConfig& c, nlohmann::json& j) {
  j["qkv_bias"] = c.qkv_bias;
  arch::write_qwen_moe(c.moe, j);
  j["shared_expert_intermediate_size"] = c.moe.shared_expert_intermediate_size;
}

TensorNames tensor_names() {
  TensorNames names(arch::trunk_tensor_names());
  names.add(arch::gqa_tensor_names());
  names.add(arch::mlp_tensor_names());
  names.add(arch::routed_expert_tensor_names());
  names.add(arch::same_names("model.layers.#.mlp.", {"shared_expert.gate_proj.weight", "shared_expert.up_proj.weight",
                                                     "shared_expert.down_proj.weight", "shared_expert_gate.weight"}));
  return names;
}

}  // namespace qwen2_moe_keys

void register_qwen2_moe(ArchRegistry& registry) {
  Architecture a;
  a.name = "Qwen2MoeForCausalLM";
  a.model_type = "qwen2_moe";
  a.read = qwen2_moe_keys::read;
  a.write = qwen2_moe_keys::write;
  a.validate = arch::validate_qwen_moe;
  a.plan = [](const ModelConfig& c, int64_t i) { return arch::qwen_family_plan(c, i, true); };
  a.tensor_names = qwen2_moe_keys::tensor_names();
  registry.add(a);
}

}  // namespace rlft::policy
