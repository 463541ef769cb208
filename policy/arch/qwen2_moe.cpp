// Qwen2MoeForCausalLM (transformers' qwen2_moe).
//   attention: GQA with q/k/v biases (qkv_bias, default true), o_proj without; rotate_half RoPE
//   mlp:       MoE when layer not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0,
//              else dense (intermediate_size) — softmax over all experts, top-K,
//              norm_topk_prob; a shared expert (shared_expert_intermediate_size) scaled by
//              sigmoid(shared_expert_gate(x))
//   window:    use_sliding_window / sliding_window on layers >= max_window_layers
#include "policy/arch/arch.h"
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
  c.decoder_sparse_step = s.get_int("decoder_sparse_step", 1);
  c.moe_intermediate_size = s.get_int("moe_intermediate_size", 1408);
  c.shared_expert_intermediate_size = s.get_int("shared_expert_intermediate_size", 5632);
  c.num_experts_per_tok = s.get_int("num_experts_per_tok", 4);
  c.n_routed_experts = s.get_int("num_experts", 60);
  c.norm_topk_prob = s.get_bool("norm_topk_prob", false);
  c.router_aux_loss_coef = s.get_double("router_aux_loss_coef", 0.001);
  c.mlp_only_layers = s.get_int_list("mlp_only_layers", {});
  c.scoring_func = "softmax";
}

void write(const ModelConfig& c, nlohmann::json& j) {
  j["qkv_bias"] = c.qkv_bias;
  j["decoder_sparse_step"] = c.decoder_sparse_step;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["num_experts"] = c.n_routed_experts;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["router_aux_loss_coef"] = c.router_aux_loss_coef;
  j["mlp_only_layers"] = c.mlp_only_layers;
}

}  // namespace qwen2_moe_keys

namespace arch {

/// The GQA + (dense | softmax-routed MoE) layer of the Qwen-MoE family.
LayerPlan qwen_moe_plan(const ModelConfig& c, int64_t index, bool shared_expert) {
  LayerPlan p;
  p.hidden_size = c.hidden_size;
  p.rms_norm_eps = c.rms_norm_eps;
  p.attention = LayerPlan::Attention::kGqa;
  AttentionOptions& a = p.gqa;
  a.hidden_size = c.hidden_size;
  a.n_heads = c.num_attention_heads;
  a.n_kv_heads = c.num_key_value_heads;
  a.head_dim = c.head_dim;
  a.qkv_bias = c.qkv_bias;
  a.o_bias = c.o_bias;
  a.qk_norm = c.qk_norm;
  a.rms_norm_eps = c.rms_norm_eps;
  a.rope = rope_options(c, c.head_dim, false);
  a.sliding_window = layer_window(c, index);
  a.n_sink_tokens = c.num_sink_tokens;
  if (is_moe_layer(c, index)) {
    p.ffn = LayerPlan::FeedForward::kMoe;
    MoeOptions& e = p.moe;
    e.hidden_size = c.hidden_size;
    e.expert_intermediate_size = c.moe_intermediate_size;
    e.router.n_experts = c.n_routed_experts;
    e.router.top_k = c.num_experts_per_tok;
    e.router.scoring = "softmax";
    e.router.norm_topk_prob = c.norm_topk_prob;
    e.shared_intermediate_size = shared_expert ? c.shared_expert_intermediate_size : 0;
    e.shared_expert_gated = true;
  } else {
    p.mlp = MlpOptions{c.hidden_size, c.intermediate_size, c.mlp_bias};
  }
  return p;
}

}  // namespace arch

void register_qwen2_moe(ArchRegistry& registry) {
  Architecture a;
  a.name = "Qwen2MoeForCausalLM";
  a.model_type = "qwen2_moe";
  a.read = qwen2_moe_keys::read;
  a.write = qwen2_moe_keys::write;
  a.plan = [](const ModelConfig& c, int64_t i) { return arch::qwen_moe_plan(c, i, true); };
  registry.add(a);
}

}  // namespace rlft::policy
