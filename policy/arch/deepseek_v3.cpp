// DeepseekV3ForCausalLM (transformers' deepseek_v3; DeepSeek-V3 tech report arXiv 2412.19437).
//   attention: MLA (q/kv LoRA, decoupled RoPE, interleaved pairs, YaRN softmax-scale mscale²)
//   mlp:       layers < first_k_dense_replace dense (intermediate_size); the rest MoE —
//              sigmoid router, e_score_correction_bias for selection, group-limited top-K
//              (n_group, topk_group, top-2 sum per group), norm_topk_prob,
//              routed_scaling_factor, shared experts of n_shared_experts·moe_intermediate_size
//   mtp:       num_nextn_predict_layers modules at model.layers.{L..L+D-1}
#include "policy/arch/arch.h"
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
  c.use_mla = true;
  c.moe_intermediate_size = s.get_int("moe_intermediate_size", 2048);
  c.n_shared_experts = s.get_int("n_shared_experts", 1);
  c.n_routed_experts = s.get_int("n_routed_experts", 256);
  c.routed_scaling_factor = s.get_double("routed_scaling_factor", 2.5);
  c.kv_lora_rank = s.get_int("kv_lora_rank", 512);
  // null (V2-Lite style): no query compression; absent: the class default.
  c.q_lora_rank = s.present("q_lora_rank") ? s.get_int("q_lora_rank", 0) : 1536;
  c.qk_rope_head_dim = s.get_int("qk_rope_head_dim", 64);
  c.v_head_dim = s.get_int("v_head_dim", 128);
  c.qk_nope_head_dim = s.get_int("qk_nope_head_dim", 128);
  c.n_group = s.get_int("n_group", 8);
  c.topk_group = s.get_int("topk_group", 4);
  c.num_experts_per_tok = s.get_int("num_experts_per_tok", 8);
  c.first_k_dense_replace = s.get_int("first_k_dense_replace", 3);
  c.moe_layer_freq = s.get_int("moe_layer_freq", 1);
  c.norm_topk_prob = s.get_bool("norm_topk_prob", true);
  c.scoring_func = s.get_string("scoring_func", "sigmoid");
  c.topk_method = s.get_string("topk_method", "noaux_tc");
  c.aux_loss_alpha = s.get_double("aux_loss_alpha", 0.001);
  c.seq_aux = s.get_bool("seq_aux", true);
  c.rope_interleave = s.get_bool("rope_interleave", true);
  const bool attention_bias = s.get_bool("attention_bias", false);
  c.qkv_bias = attention_bias;
  c.o_bias = attention_bias;
  c.num_nextn_predict_layers = s.get_int("num_nextn_predict_layers", 0);
  c.head_dim = c.qk_rope_head_dim;  // as transformers derives it
  if (c.topk_method != "noaux_tc" && c.topk_method != "greedy" && c.topk_method != "group_limited_greedy")
    s.fail("topk_method", "known methods are noaux_tc, greedy, group_limited_greedy");
}

void write(const ModelConfig& c, nlohmann::json& j) {
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["n_shared_experts"] = c.n_shared_experts;
  j["n_routed_experts"] = c.n_routed_experts;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["kv_lora_rank"] = c.kv_lora_rank;
  j["q_lora_rank"] = c.q_lora_rank > 0 ? nlohmann::json(c.q_lora_rank) : nlohmann::json(nullptr);
  j["qk_rope_head_dim"] = c.qk_rope_head_dim;
  j["v_head_dim"] = c.v_head_dim;
  j["qk_nope_head_dim"] = c.qk_nope_head_dim;
  j["n_group"] = c.n_group;
  j["topk_group"] = c.topk_group;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["first_k_dense_replace"] = c.first_k_dense_replace;
  j["moe_layer_freq"] = c.moe_layer_freq;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["scoring_func"] = c.scoring_func;
  j["topk_method"] = c.topk_method;
  j["aux_loss_alpha"] = c.aux_loss_alpha;
  j["seq_aux"] = c.seq_aux;
  j["rope_interleave"] = c.rope_interleave;
  j["attention_bias"] = c.o_bias;
  j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
}

LayerPlan plan(const ModelConfig& c, int64_t index) {
  LayerPlan p;
  p.hidden_size = c.hidden_size;
  p.rms_norm_eps = c.rms_norm_eps;
  p.attention = LayerPlan::Attention::kMla;
  MlaOptions& m = p.mla;
  m.hidden_size = c.hidden_size;
  m.n_heads = c.num_attention_heads;
  m.q_lora_rank = c.q_lora_rank;
  m.kv_lora_rank = c.kv_lora_rank;
  m.qk_nope_head_dim = c.qk_nope_head_dim;
  m.qk_rope_head_dim = c.qk_rope_head_dim;
  m.v_head_dim = c.v_head_dim;
  m.attention_bias = c.o_bias;
  m.rms_norm_eps = c.rms_norm_eps;
  m.rope = arch::rope_options(c, c.qk_rope_head_dim, c.rope_interleave);
  m.sliding_window = arch::layer_window(c, index);
  m.n_sink_tokens = c.num_sink_tokens;
  if (is_moe_layer(c, index)) {
    p.ffn = LayerPlan::FeedForward::kMoe;
    MoeOptions& e = p.moe;
    e.hidden_size = c.hidden_size;
    e.expert_intermediate_size = c.moe_intermediate_size;
    e.router.n_experts = c.n_routed_experts;
    e.router.top_k = c.num_experts_per_tok;
    e.router.scoring = c.scoring_func;
    e.router.norm_topk_prob = c.norm_topk_prob;
    e.router.routed_scaling_factor = c.routed_scaling_factor;
    e.router.n_group = c.n_group;
    e.router.topk_group = c.topk_group;
    e.router.group_score = c.topk_method == "group_limited_greedy" ? "max" : "top2_sum";
    e.router_bias = true;  // transformers registers e_score_correction_bias in every V3 router
    e.shared_intermediate_size = c.n_shared_experts * c.moe_intermediate_size;
    e.shared_expert_gated = false;
  } else {
    p.mlp = MlpOptions{c.hidden_size, c.intermediate_size, false};
  }
  return p;
}

}  // namespace deepseek_v3_keys

void register_deepseek_v3(ArchRegistry& registry) {
  Architecture a;
  a.name = "DeepseekV3ForCausalLM";
  a.model_type = "deepseek_v3";
  a.read = deepseek_v3_keys::read;
  a.write = deepseek_v3_keys::write;
  a.plan = deepseek_v3_keys::plan;
  a.supports_mtp = true;
  registry.add(a);
}

}  // namespace rlft::policy
