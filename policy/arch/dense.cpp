// The dense members of the family — MoE with no experts: LlamaForCausalLM (attention_bias on
// q/k/v/o, mlp_bias), Qwen2ForCausalLM (q/k/v biases, no o bias), Qwen3ForCausalLM (q/k
// RMSNorm, attention_bias). All: GQA, rotate_half RoPE, SwiGLU MLP of intermediate_size.
#include "policy/arch/common.h"
#include "policy/config_source.h"

namespace rlft::policy {

namespace dense_keys {  // named, not anonymous: the files of a unity batch share one translation unit

ModelConfig llama_defaults() {
  ModelConfig d;
  d.vocab_size = 32000;
  d.hidden_size = 4096;
  d.intermediate_size = 11008;
  d.num_hidden_layers = 32;
  d.num_attention_heads = 32;
  d.max_position_embeddings = 2048;
  d.rms_norm_eps = 1e-6;
  d.bos_token_id = 1;
  d.eos_token_id = {2};
  return d;
}

ModelConfig qwen_defaults(bool qwen3) {
  ModelConfig d;
  d.vocab_size = 151936;
  d.hidden_size = 4096;
  d.intermediate_size = 22016;
  d.num_hidden_layers = 32;
  d.num_attention_heads = 32;
  d.max_position_embeddings = 32768;
  d.rms_norm_eps = 1e-6;
  d.sliding_window = 4096;
  d.max_window_layers = 28;
  if (qwen3) d.head_dim = 128;
  d.torch_dtype = "bfloat16";
  return d;
}

void read_llama(const KeySource& s, ModelConfig& c) {
  arch::read_common(s, c, llama_defaults());
  const bool bias = s.get_bool("attention_bias", false);
  c.qkv_bias = bias;
  c.o_bias = bias;
  c.mlp_bias = s.get_bool("mlp_bias", false);
}
void write_llama(const ModelConfig& c, nlohmann::json& j) {
  j["attention_bias"] = c.o_bias;
  j["mlp_bias"] = c.mlp_bias;
}

void read_qwen2(const KeySource& s, ModelConfig& c) {
  arch::read_common(s, c, qwen_defaults(false));
  c.qkv_bias = s.get_bool("qkv_bias", true);
}
void write_qwen2(const ModelConfig& c, nlohmann::json& j) {
  j["qkv_bias"] = c.qkv_bias;
}

void read_qwen3(const KeySource& s, ModelConfig& c) {
  arch::read_common(s, c, qwen_defaults(true));
  const bool bias = s.get_bool("attention_bias", false);
  c.qkv_bias = bias;
  c.o_bias = bias;
  c.qk_norm = true;
}
void write_qwen3(const ModelConfig& c, nlohmann::json& j) {
  j["attention_bias"] = c.o_bias;
}

void add(ArchRegistry& registry, const char* name, const char* type,
         std::function<void(const KeySource&, ModelConfig&)> read,
         std::function<void(const ModelConfig&, nlohmann::json&)> write) {
  Architecture a;
  a.name = name;
  a.model_type = type;
  a.read = std::move(read);
  a.write = std::move(write);
  a.plan = [](const ModelConfig& c, int64_t i) { return arch::qwen_family_plan(c, i, false); };
  a.tensor_names = TensorNames(arch::trunk_tensor_names());
  a.tensor_names.add(arch::gqa_tensor_names());
  a.tensor_names.add(arch::mlp_tensor_names());
  registry.add(a);
}

}  // namespace dense_keys

void register_dense(ArchRegistry& registry) {
  using namespace dense_keys;
  add(registry, "LlamaForCausalLM", "llama", read_llama, write_llama);
  add(registry, "Qwen2ForCausalLM", "qwen2", read_qwen2, write_qwen2);
  add(registry, "Qwen3ForCausalLM", "qwen3", read_qwen3, write_qwen3);
}

}  // namespace rlft::policy
