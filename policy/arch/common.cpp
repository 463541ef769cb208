// The pieces the architecture files share (policy/arch/common.h).
#include "policy/arch/common.h"

#include "policy/config_source.h"

namespace rlft::policy::arch {

namespace {

void read_rope(const KeySource& source, ModelConfig& c, const ModelConfig& d) {
  c.rope_theta = source.get_double("rope_theta", d.rope_theta);
  // transformers v4 writes rope_scaling (+ rope_theta); v5 writes rope_parameters holding both.
  const char* key = source.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  if (!source.has(key)) return;
  const auto s = source.section(key);
  c.rope_theta = s->get_double("rope_theta", c.rope_theta);
  RopeScaling& r = c.rope_scaling;
  r.type = s->get_string("rope_type", s->get_string("type", "default"));
  if (r.type == "default") {
    s->accept({"factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "attention_factor",
               "original_max_position_embeddings", "low_freq_factor", "high_freq_factor", "truncate"});
    return;
  }
  r.factor = s->get_double("factor", 1.0);
  r.beta_fast = s->get_double("beta_fast", 32.0);
  r.beta_slow = s->get_double("beta_slow", 1.0);
  r.mscale = s->get_double("mscale", 0.0);
  r.mscale_all_dim = s->get_double("mscale_all_dim", 0.0);
  if (s->has("attention_factor")) r.attention_factor = s->get_double("attention_factor", 1.0);
  r.original_max_position_embeddings = s->get_int("original_max_position_embeddings", 0);
  r.low_freq_factor = s->get_double("low_freq_factor", 1.0);
  r.high_freq_factor = s->get_double("high_freq_factor", 4.0);
  r.truncate = s->get_bool("truncate", true);
  if (r.type != "default" && r.type != "linear" && r.type != "yarn" && r.type != "llama3")
    s->fail(s->has("rope_type") ? "rope_type" : "type",
            "unsupported RoPE type: known types are default, linear, yarn, llama3");
  s->reject_unknown_keys();
}

nlohmann::json rope_json(const ModelConfig& c) {
  const RopeScaling& r = c.rope_scaling;
  if (r.type == "default") return nullptr;
  nlohmann::json j;
  j["rope_type"] = r.type;
  j["type"] = r.type;  // older readers (DeepSeek's remote code) look for "type"
  j["factor"] = r.factor;
  if (r.type == "yarn") {
    j["beta_fast"] = r.beta_fast;
    j["beta_slow"] = r.beta_slow;
    if (r.mscale != 0.0) j["mscale"] = r.mscale;
    if (r.mscale_all_dim != 0.0) j["mscale_all_dim"] = r.mscale_all_dim;
    if (r.attention_factor) j["attention_factor"] = *r.attention_factor;
    if (!r.truncate) j["truncate"] = false;
  }
  if (r.type == "llama3") {
    j["low_freq_factor"] = r.low_freq_factor;
    j["high_freq_factor"] = r.high_freq_factor;
  }
  if (r.original_max_position_embeddings > 0)
    j["original_max_position_embeddings"] = r.original_max_position_embeddings;
  return j;
}

}  // namespace

void read_common(const KeySource& s, ModelConfig& c, const ModelConfig& d) {
  s.accept({"architectures", "model_type", "transformers_version", "use_cache", "attention_dropout", "pretraining_tp",
            "_name_or_path", "output_router_logits", "auto_map", "dtype", "layer_types", "_attn_implementation"});
  c.torch_dtype = s.get_string("torch_dtype", s.get_string("dtype", d.torch_dtype));
  c.vocab_size = s.get_int("vocab_size", d.vocab_size);
  c.hidden_size = s.get_int("hidden_size", d.hidden_size);
  c.intermediate_size = s.get_int("intermediate_size", d.intermediate_size);
  c.num_hidden_layers = s.get_int("num_hidden_layers", d.num_hidden_layers);
  c.num_attention_heads = s.get_int("num_attention_heads", d.num_attention_heads);
  c.num_key_value_heads = s.get_int("num_key_value_heads", c.num_attention_heads);
  c.head_dim = s.get_int("head_dim", d.head_dim);
  if (c.head_dim == 0 && c.num_attention_heads > 0) c.head_dim = c.hidden_size / c.num_attention_heads;
  c.hidden_act = s.get_string("hidden_act", d.hidden_act);
  c.max_position_embeddings = s.get_int("max_position_embeddings", d.max_position_embeddings);
  c.rms_norm_eps = s.get_double("rms_norm_eps", d.rms_norm_eps);
  read_rope(s, c, d);
  c.tie_word_embeddings = s.get_bool("tie_word_embeddings", d.tie_word_embeddings);
  c.initializer_range = s.get_double("initializer_range", d.initializer_range);
  if (s.has("bos_token_id"))
    c.bos_token_id = s.get_int("bos_token_id", 0);
  else
    c.bos_token_id = d.bos_token_id;
  c.eos_token_id = s.get_int_list("eos_token_id", d.eos_token_id);
  if (s.has("pad_token_id")) c.pad_token_id = s.get_int("pad_token_id", 0);
  c.use_sliding_window = s.get_bool("use_sliding_window", d.use_sliding_window);
  c.sliding_window = s.get_int("sliding_window", d.sliding_window);
  c.max_window_layers = s.get_int("max_window_layers", d.max_window_layers);
  c.num_sink_tokens = s.get_int("num_sink_tokens", d.num_sink_tokens);
}

void write_common(const ModelConfig& c, nlohmann::json& j) {
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = c.hidden_act;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = rope_json(c);
  if (j.contains("rope_parameters")) {
    nlohmann::json p = c.rope_scaling.type == "default" ? nlohmann::json{{"rope_type", "default"}} : rope_json(c);
    p["rope_theta"] = c.rope_theta;
    j["rope_parameters"] = p;
  }
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["initializer_range"] = c.initializer_range;
  j["bos_token_id"] = c.bos_token_id ? nlohmann::json(*c.bos_token_id) : nlohmann::json(nullptr);
  if (c.eos_token_id.empty())
    j["eos_token_id"] = nullptr;
  else if (c.eos_token_id.size() == 1)
    j["eos_token_id"] = c.eos_token_id.front();
  else
    j["eos_token_id"] = c.eos_token_id;
  j["pad_token_id"] = c.pad_token_id ? nlohmann::json(*c.pad_token_id) : nlohmann::json(nullptr);
  j["use_sliding_window"] = c.use_sliding_window;
  j["sliding_window"] = c.sliding_window;
  j["max_window_layers"] = c.max_window_layers;
  if (c.num_sink_tokens > 0)
    j["num_sink_tokens"] = c.num_sink_tokens;
  else
    j.erase("num_sink_tokens");
}

RopeOptions rope_options(const ModelConfig& c, int64_t dim, bool interleaved) {
  RopeOptions r;
  r.dim = dim;
  r.theta = c.rope_theta;
  r.scaling = c.rope_scaling;
  r.max_position_embeddings = c.max_position_embeddings;
  r.interleaved = interleaved;
  return r;
}

int64_t layer_window(const ModelConfig& c, int64_t index) {
  if (!c.use_sliding_window) return 0;
  return index >= c.max_window_layers ? c.sliding_window : 0;
}

MoeOptions routed_moe_options(const ModelConfig& c) {
  MoeOptions e;
  e.hidden_size = c.hidden_size;
  e.expert_intermediate_size = c.moe.moe_intermediate_size;
  e.router.n_experts = c.moe.n_routed_experts;
  e.router.top_k = c.moe.num_experts_per_tok;
  e.router.scoring = c.moe.scoring_func;
  e.router.norm_topk_prob = c.moe.norm_topk_prob;
  e.router.routed_scaling_factor = c.moe.routed_scaling_factor;
  e.router.n_group = c.moe.n_group;
  e.router.topk_group = c.moe.topk_group;
  return e;
}

LayerPlan qwen_family_plan(const ModelConfig& c, int64_t index, bool shared_expert) {
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
    p.moe = routed_moe_options(c);
    p.moe.shared_intermediate_size = shared_expert ? c.moe.shared_expert_intermediate_size : 0;
    p.moe.shared_expert_gated = true;
  } else {
    p.mlp = MlpOptions{c.hidden_size, c.intermediate_size, c.mlp_bias};
  }
  return p;
}

void read_qwen_moe(const KeySource& s, MoeConfig& m, const QwenMoeDefaults& d) {
  m.decoder_sparse_step = s.get_int("decoder_sparse_step", 1);
  m.moe_intermediate_size = s.get_int("moe_intermediate_size", d.moe_intermediate_size);
  m.num_experts_per_tok = s.get_int("num_experts_per_tok", d.num_experts_per_tok);
  m.n_routed_experts = s.get_int("num_experts", d.num_experts);
  m.norm_topk_prob = s.get_bool("norm_topk_prob", false);
  m.router_aux_loss_coef = s.get_double("router_aux_loss_coef", 0.001);
  m.mlp_only_layers = s.get_int_list("mlp_only_layers", {});
  m.scoring_func = "softmax";
}

void write_qwen_moe(const MoeConfig& m, nlohmann::json& j) {
  j["decoder_sparse_step"] = m.decoder_sparse_step;
  j["moe_intermediate_size"] = m.moe_intermediate_size;
  j["num_experts_per_tok"] = m.num_experts_per_tok;
  j["num_experts"] = m.n_routed_experts;
  j["norm_topk_prob"] = m.norm_topk_prob;
  j["router_aux_loss_coef"] = m.router_aux_loss_coef;
  j["mlp_only_layers"] = m.mlp_only_layers;
}

void validate_qwen_moe(const ModelConfig& c, const ConfigCheck& check) {
  c.moe.validate(check, "num_experts");
}

std::vector<TensorName> same_names(const std::string& prefix, const std::vector<std::string>& leaves) {
  std::vector<TensorName> rows;
  for (const auto& leaf : leaves) rows.push_back({prefix + leaf, prefix + leaf});
  return rows;
}

namespace {

void append_rows(std::vector<TensorName>& rows, const std::vector<TensorName>& more) {
  rows.insert(rows.end(), more.begin(), more.end());
}

}  // namespace

std::vector<TensorName> trunk_tensor_names() {
  auto rows = same_names("", {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"});
  append_rows(rows, same_names("model.layers.#.", {"input_layernorm.weight", "post_attention_layernorm.weight"}));
  return rows;
}

std::vector<TensorName> gqa_tensor_names() {
  return same_names("model.layers.#.self_attn.",
                    {"q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias", "v_proj.weight", "v_proj.bias",
                     "o_proj.weight", "o_proj.bias", "q_norm.weight", "k_norm.weight"});
}

std::vector<TensorName> mlp_tensor_names() {
  return same_names("model.layers.#.mlp.", {"gate_proj.weight", "gate_proj.bias", "up_proj.weight", "up_proj.bias",
                                            "down_proj.weight", "down_proj.bias"});
}

std::vector<TensorName> routed_expert_tensor_names() {
  auto rows = same_names("model.layers.#.mlp.", {"gate.weight"});
  append_rows(rows,
              same_names("model.layers.#.mlp.experts.#.", {"gate_proj.weight", "up_proj.weight", "down_proj.weight"}));
  return rows;
}

}  // namespace rlft::policy::arch
