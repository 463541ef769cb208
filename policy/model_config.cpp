#include "policy/model_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/config.h"
#include "core/error.h"
#include "policy/arch/arch.h"
#include "policy/config_source.h"

namespace rlft::policy {

namespace {

void validate_impl(const ModelConfig& c, const KeySource* source) {
  auto check = [&](bool ok, const char* key, auto value, const std::string& constraint) {
    if (ok) return;
    if (source) source->fail(key, constraint);
    throw ConfigError(fmt::format("model config ({}): {} = {}: {}", c.architecture, key, value, constraint));
  };
  check(c.vocab_size > 0, "vocab_size", c.vocab_size, "must be > 0");
  check(c.hidden_size > 0, "hidden_size", c.hidden_size, "must be > 0");
  check(c.num_hidden_layers > 0, "num_hidden_layers", c.num_hidden_layers, "must be > 0");
  check(c.num_attention_heads > 0, "num_attention_heads", c.num_attention_heads, "must be > 0");
  check(c.num_key_value_heads > 0 && c.num_attention_heads % c.num_key_value_heads == 0, "num_key_value_heads",
        c.num_key_value_heads, fmt::format("must divide num_attention_heads ({})", c.num_attention_heads));
  check(c.hidden_act == "silu", "hidden_act", c.hidden_act, "only silu (SwiGLU) is supported");
  check(c.rms_norm_eps > 0.0, "rms_norm_eps", c.rms_norm_eps, "must be > 0");
  check(c.rope_theta > 0.0, "rope_theta", c.rope_theta, "must be > 0");
  check(c.initializer_range >= 0.0, "initializer_range", c.initializer_range, "must be >= 0");
  const auto& rs = c.rope_scaling.type;
  check(rs == "default" || rs == "linear" || rs == "yarn" || rs == "llama3", "rope_scaling", rs,
        "rope type must be one of default, linear, yarn, llama3");
  check(rs == "default" || c.rope_scaling.factor > 0.0, "rope_scaling", c.rope_scaling.factor,
        "factor must be > 0");
  if (c.use_mla) {
    check(c.kv_lora_rank > 0, "kv_lora_rank", c.kv_lora_rank, "must be > 0");
    check(c.q_lora_rank >= 0, "q_lora_rank", c.q_lora_rank, "must be >= 0 (0 or null: no query compression)");
    check(c.qk_nope_head_dim > 0, "qk_nope_head_dim", c.qk_nope_head_dim, "must be > 0");
    check(c.qk_rope_head_dim > 0 && c.qk_rope_head_dim % 2 == 0, "qk_rope_head_dim", c.qk_rope_head_dim,
          "must be even and > 0");
    check(c.v_head_dim > 0, "v_head_dim", c.v_head_dim, "must be > 0");
  } else {
    check(c.head_dim > 0 && c.head_dim % 2 == 0, "head_dim", c.head_dim, "must be even and > 0");
  }
  bool any_dense = false;
  for (int64_t i = 0; i < c.num_hidden_layers + c.num_nextn_predict_layers; ++i) any_dense |= !is_moe_layer(c, i);
  if (any_dense) check(c.intermediate_size > 0, "intermediate_size", c.intermediate_size, "must be > 0");
  if (c.n_routed_experts > 0) {
    const char* e_key = c.model_type == "deepseek_v3" ? "n_routed_experts" : "num_experts";
    check(c.num_experts_per_tok >= 1 && c.num_experts_per_tok <= c.n_routed_experts, "num_experts_per_tok",
          c.num_experts_per_tok, fmt::format("must be in [1, {} = {}]", e_key, c.n_routed_experts));
    check(c.moe_intermediate_size > 0, "moe_intermediate_size", c.moe_intermediate_size, "must be > 0");
    check(c.scoring_func == "softmax" || c.scoring_func == "sigmoid", "scoring_func", c.scoring_func,
          "must be softmax or sigmoid");
    check(c.n_group >= 1 && c.n_routed_experts % c.n_group == 0, "n_group", c.n_group,
          fmt::format("must divide {} ({})", e_key, c.n_routed_experts));
    check(c.topk_group >= 1 && c.topk_group <= c.n_group, "topk_group", c.topk_group,
          fmt::format("must be in [1, n_group = {}]", c.n_group));
    check(c.num_experts_per_tok <= c.topk_group * (c.n_routed_experts / c.n_group), "num_experts_per_tok",
          c.num_experts_per_tok, "exceeds the experts of topk_group groups");
    check(c.decoder_sparse_step >= 1, "decoder_sparse_step", c.decoder_sparse_step, "must be >= 1");
    check(c.moe_layer_freq >= 1, "moe_layer_freq", c.moe_layer_freq, "must be >= 1");
    check(c.first_k_dense_replace >= 0, "first_k_dense_replace", c.first_k_dense_replace, "must be >= 0");
    check(c.routed_scaling_factor > 0.0, "routed_scaling_factor", c.routed_scaling_factor, "must be > 0");
  }
  if (c.use_sliding_window)
    check(c.sliding_window > 0, "sliding_window", c.sliding_window, "must be > 0 when use_sliding_window is true");
  check(c.num_sink_tokens >= 0, "num_sink_tokens", c.num_sink_tokens, "must be >= 0");
  check(c.num_nextn_predict_layers >= 0, "num_nextn_predict_layers", c.num_nextn_predict_layers, "must be >= 0");
}

std::string architecture_name(const KeySource& source, const ArchRegistry& registry) {
  std::string name;
  const auto archs = source.get_string_list("architectures", {});
  if (!archs.empty()) name = archs.front();
  const std::string model_type = source.get_string("model_type", "");
  if (name.empty()) name = model_type;
  if (name.empty())
    source.fail("architectures", fmt::format("missing (and no model_type): known architectures are {}",
                                             fmt::join(registry.names(), ", ")));
  if (!registry.contains(name))
    source.fail(archs.empty() ? "model_type" : "architectures",
                fmt::format("unknown architecture '{}': known architectures are {}", name,
                            fmt::join(registry.names(), ", ")));
  return name;
}

ModelConfig read_from(const KeySource& source, const ArchRegistry& registry) {
  const Architecture& arch = registry.get(architecture_name(source, registry));
  ModelConfig config;
  config.architecture = arch.name;
  config.model_type = arch.model_type;
  arch.read(source, config);
  config.validate(source);
  return config;
}

}  // namespace

void ModelConfig::validate() const { validate_impl(*this, nullptr); }
void ModelConfig::validate(const KeySource& source) const { validate_impl(*this, &source); }

bool is_moe_layer(const ModelConfig& c, int64_t i) {
  if (c.n_routed_experts <= 0) return false;
  if (i < c.first_k_dense_replace) return false;
  if (i % c.moe_layer_freq != 0) return false;
  if ((i + 1) % c.decoder_sparse_step != 0) return false;
  for (int64_t j : c.mlp_only_layers)
    if (j == i) return false;
  return true;
}

ModelConfig read_model_config_json(const nlohmann::json& object, const std::string& source,
                                   const ArchRegistry& registry) {
  const auto src = json_source(object, source);
  ModelConfig config = read_from(*src, registry);
  config.source_json = object;
  return config;
}

ModelConfig read_model_config_yaml(const ConfigView& view, const ArchRegistry& registry) {
  const auto src = yaml_source(view);
  ModelConfig config = read_from(*src, registry);
  src->reject_unknown_keys();
  return config;
}

nlohmann::json model_config_to_json(const ModelConfig& config, const ArchRegistry& registry) {
  const Architecture& arch = registry.get(config.architecture);
  nlohmann::json j = config.source_json.is_object() ? config.source_json : nlohmann::json::object();
  j["architectures"] = nlohmann::json::array({arch.name});
  j["model_type"] = arch.model_type;
  j["torch_dtype"] = config.torch_dtype;
  arch::write_common(config, j);
  arch.write(config, j);
  return j;
}

}  // namespace rlft::policy
