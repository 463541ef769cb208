// DeepseekV3ForCausalLM (transformers' deepseek_v3; DeepSeek-V3 tech report arXiv 2412.19437).
//   attention: MLA (q/kv LoRA, decoupled RoPE, interleaved pairs, YaRN softmax-scale mscale²)
//   mlp:       layers < first_k_dense_replace dense (intermediate_size); the rest MoE —
//              sigmoid router, e_score_correction_bias for selection, group-limited top-K
//              (n_group, topk_group, top-2 sum per group), norm_topk_prob,
//              routed_scaling_factor, shared experts of n_shared_experts·moe_intermediate_size
//   mtp:       num_nextn_predict_layers modules at model.layers.{L..L+D-1}
#include <fmt/format.h>

#include "core/error.h"
#include "policy/arch/common.h"
#include "policy/config_source.h"

namespace rlft::policy {

namespace deepseek_v3_keys {  // named, not anonymous: the files of a unity batch share one translation unit

ModelConfig class_defaults() {  // DeepseekV3Config's defaults
  ModelConfig d;
  d.vocab_size = 129280;
  d.hidden_size = 7168;
  d.intermediate_size = 18432;
  d.num_hidden_layers = 61;
  d.num_attention_heads = 128;
  d.max_position_embeddings = 4096;
  d.rms_norm_eps = 1e-6;
  d.rope_theta = 10000.0;
  d.bos_token_id = 0;
  d.eos_token_id = {1};
  d.torch_dtype = "bfloat16";
  return d;
}

void read(const KeySource& s, ModelConfig& c) {
  const ModelConfig d = class_defaults();
  arch::read_common(s, c, d);
  s.accept({"ep_size", "quantization_config"});
  MlaConfig& a = c.mla.emplace();
  MoeConfig& m = c.moe;
  m.moe_intermediate_size = s.get_int("moe_intermediate_size", 2048);
  m.n_shared_experts = s.get_int("n_shared_experts", 1);
  m.n_routed_experts = s.get_int("n_routed_experts", 256);
  m.routed_scaling_factor = s.get_double("routed_scaling_factor", 2.5);
  a.kv_lora_rank = s.get_int("kv_lora_rank", 512);
  // null (V2-Lite style): no query compression; absent: the class default.
  a.q_lora_rank = s.present("q_lora_rank") ? s.get_int("q_lora_rank", 0) : 1536;
  a.qk_rope_head_dim = s.get_int("qk_rope_head_dim", 64);
  a.v_head_dim = s.get_int("v_head_dim", 128);
  a.qk_nope_head_dim = s.get_int("qk_nope_head_dim", 128);
  m.n_group = s.get_int("n_group", 8);
  m.topk_group = s.get_int("topk_group", 4);
  m.num_experts_per_tok = s.get_int("num_experts_per_tok", 8);
  m.first_k_dense_replace = s.get_int("first_k_dense_replace", 3);
  m.moe_layer_freq = s.get_int("moe_layer_freq", 1);
  m.norm_topk_prob = s.get_bool("norm_topk_prob", true);
  m.scoring_func = s.get_string("scoring_func", "sigmoid");
  m.topk_method = s.get_string("topk_method", "noaux_tc");
  m.aux_loss_alpha = s.get_double("aux_loss_alpha", 0.001);
  m.seq_aux = s.get_bool("seq_aux", true);
  a.rope_interleave = s.get_bool("rope_interleave", true);
  const bool attention_bias = s.get_bool("attention_bias", false);
  c.qkv_bias = attention_bias;
  c.o_bias = attention_bias;
  c.num_nextn_predict_layers = s.get_int("num_nextn_predict_layers", 0);
  c.head_dim = a.qk_rope_head_dim;  // as transformers derives it
  if (m.topk_method != "noaux_tc" && m.topk_method != "greedy" && m.topk_method != "group_limited_greedy")
    s.fail("topk_method", "known methods are noaux_tc, greedy, group_limited_greedy");
}

void write(const ModelConfig& c, nlohmann::json& j) {
  const MlaConfig& a = *c.mla;
  const MoeConfig& m = c.moe;
  j["moe_intermediate_size"] = m.moe_intermediate_size;
  j["n_shared_experts"] = m.n_shared_experts;
  j["n_routed_experts"] = m.n_routed_experts;
  j["routed_scaling_factor"] = m.routed_scaling_factor;
  j["kv_lora_rank"] = a.kv_lora_rank;
  j["q_lora_rank"] = a.q_lora_rank > 0 ? nlohmann::json(a.q_lora_rank) : nlohmann::json(nullptr);
  j["qk_rope_head_dim"] = a.qk_rope_head_dim;
  j["v_head_dim"] = a.v_head_dim;
  j["qk_nope_head_dim"] = a.qk_nope_head_dim;
  j["n_group"] = m.n_group;
  j["topk_group"] = m.topk_group;
  j["num_experts_per_tok"] = m.num_experts_per_tok;
  j["first_k_dense_replace"] = m.first_k_dense_replace;
  j["moe_layer_freq"] = m.moe_layer_freq;
  j["norm_topk_prob"] = m.norm_topk_prob;
  j["scoring_func"] = m.scoring_func;
  j["topk_method"] = m.topk_method;
  j["aux_loss_alpha"] = m.aux_loss_alpha;
  j["seq_aux"] = m.seq_aux;
  j["rope_interleave"] = a.rope_interleave;
  j["attention_bias"] = c.o_bias;
  j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
}

void validate(const ModelConfig& c, const ConfigCheck& check) {
  RLFT_CHECK(c.mla.has_value(), "{}: the config has no MLA block", c.architecture);
  c.mla->validate(check);
  c.moe.validate(check, "n_routed_experts");
}

LayerPlan plan(const ModelConfig& c, int64_t index) {
  const MlaConfig& a = *c.mla;
  const MoeConfig& moe = c.moe;
  LayerPlan p;
  p.hidden_size = c.hidden_size;
  p.rms_norm_eps = c.rms_norm_eps;
  p.attention = LayerPlan::Attention::kMla;
  MlaOptions& m = p.mla;
  m.hidden_size = c.hidden_size;
  m.n_heads = c.num_attention_heads;
  m.q_lora_rank = a.q_lora_rank;
  m.kv_lora_rank = a.kv_lora_rank;
  m.qk_nope_head_dim = a.qk_nope_head_dim;
  m.qk_rope_head_dim = a.qk_rope_head_dim;
  m.v_head_dim = a.v_head_dim;
  m.attention_bias = c.o_bias;
  m.rms_norm_eps = c.rms_norm_eps;
  m.rope = arch::rope_options(c, a.qk_rope_head_dim, a.rope_interleave);
  m.sliding_window = arch::layer_window(c, index);
  m.n_sink_tokens = c.num_sink_tokens;
  if (moe.is_moe_layer(index)) {
    p.ffn = LayerPlan::FeedForward::kMoe;
    p.moe = arch::routed_moe_options(c);
    MoeOptions& e = p.moe;
    e.router.group_score = moe.topk_method == "group_limited_greedy" ? "max" : "top2_sum";
    e.router_bias = true;  // transformers registers e_score_correction_bias in every V3 router
    e.router_bias_balanced = moe.topk_method == "noaux_tc";  // only noaux_tc selects with it by design
    e.shared_intermediate_size = moe.n_shared_experts * moe.moe_intermediate_size;
    e.shared_expert_gated = false;
  } else {
    p.mlp = MlpOptions{c.hidden_size, c.intermediate_size, false};
  }
  return p;
}

TensorNames tensor_names() {
  TensorNames names(arch::trunk_tensor_names());
  names.add(arch::same_names("model.layers.#.self_attn.",
                             {"q_proj.weight", "q_a_proj.weight", "q_a_proj.bias", "q_a_layernorm.weight",
                              "q_b_proj.weight", "kv_a_proj_with_mqa.weight", "kv_a_proj_with_mqa.bias",
                              "kv_a_layernorm.weight", "kv_b_proj.weight", "o_proj.weight", "o_proj.bias"}));
  names.add(arch::mlp_tensor_names());
  names.add(arch::routed_expert_tensor_names());
  names.add(
      arch::same_names("model.layers.#.mlp.", {"gate.e_score_correction_bias", "shared_experts.gate_proj.weight",
                                               "shared_experts.up_proj.weight", "shared_experts.down_proj.weight"}));
  // MTP module k at model.layers.{L + k - 1}: the decoder layer's tensors plus these.
  names.add(arch::same_names("model.layers.#.",
                             {"enorm.weight", "hnorm.weight", "eh_proj.weight", "shared_head.norm.weight"}));
  return names;
}

// DeepSeek's release stores each MTP module's copy of the shared embedding and LM head.
std::vector<TensorCopy> copies(const ModelConfig& c) {
  std::vector<TensorCopy> out;
  const std::string head = c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const std::string layer = fmt::format("model.layers.{}.", c.num_hidden_layers + k);
    out.push_back({layer + "embed_tokens.weight", "model.embed_tokens.weight"});
    out.push_back({layer + "shared_head.head.weight", head});
  }
  return out;
}

}  // namespace deepseek_v3_keys

void register_deepseek_v3(ArchRegistry& registry) {
  Architecture a;
  a.name = "DeepseekV3ForCausalLM";
  a.model_type = "deepseek_v3";
  a.read = deepseek_v3_keys::read;
  a.write = deepseek_v3_keys::write;
  a.validate = deepseek_v3_keys::validate;
  a.plan = deepseek_v3_keys::plan;
  a.tensor_names = deepseek_v3_keys::tensor_names();
  a.copies = deepseek_v3_keys::copies;
  a.supports_mtp = true;
  registry.add(a);
}

}  // namespace rlft::policy
