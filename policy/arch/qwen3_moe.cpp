// Qwen3MoeForCausalLM (transformers' qwen3_moe).
//   attention: GQA, per-head q_norm / k_norm (RMSNorm over head_dim) before RoPE, biases
//              only with attention_bias (q, k, v and o); head_dim from config.json
//   mlp:       as Qwen2-MoE without the shared expert
#include "policy/arch/common.h"
#include "policy/config_source.h"

namespace rlft::policy {

namespace qwen3_moe_keys {  // named, not anonymous: the files of a unity batch share one translation unit

ModelConfig class_defaults() {  // Qwen3MoeConfig's defaults
  ModelConfig d;
  d.vocab_size = 151936;
  d.hidden_size = 2048;
  d.intermediate_size = 6144;
  d.num_hidden_layers = 24;
  d.num_attention_heads = 32;
  d.max_position_embeddings = 32768;
  d.rms_norm_eps = 1e-6;
  d.rope_theta = 10000.0;
  d.sliding_window = 4096;
  d.max_window_layers = 0;  // current transformers applies the window to every layer
  d.torch_dtype = "bfloat16";
  return d;
}

void read(const KeySource& s, ModelConfig& c) {
  arch::read_common(s, c, class_defaults());
  if (!s.has("num_key_value_heads")) c.num_key_value_heads = 4;  // the class default (GQA)
  const bool attention_bias = s.get_bool("attention_bias", false);
  c.qkv_bias = attention_bias;
  c.o_bias = attention_bias;
  c.qk_norm = true;
  arch::read_qwen_moe(s, c.moe, {/*moe_intermediate_size=*/768, /*num_experts_per_tok=*/8, /*num_experts=*/128});
}

void write(const ModelConfig& c, nlohmann::json& j) {
  j["attention_bias"] = c.o_bias;
  arch::write_qwen_moe(c.moe, j);
}

TensorNames tensor_names() {
  TensorNames names(arch::trunk_tensor_names());
  names.add(arch::gqa_tensor_names());
  names.add(arch::mlp_tensor_names());
  names.add(arch::routed_expert_tensor_names());
  return names;
}

}  // namespace qwen3_moe_keys

void register_qwen3_moe(ArchRegistry& registry) {
  Architecture a;
  a.name = "Qwen3MoeForCausalLM";
  a.model_type = "qwen3_moe";
  a.read = qwen3_moe_keys::read;
  a.write = qwen3_moe_keys::write;
  a.validate = arch::validate_qwen_moe;
  a.plan = [](const ModelConfig& c, int64_t i) { return arch::qwen_family_plan(c, i, false); };
  a.tensor_names = qwen3_moe_keys::tensor_names();
  registry.add(a);
}

}  // namespace rlft::policy
