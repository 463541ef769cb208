#include "policy/model_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/config.h"
#include "core/error.h"
#include "policy/arch/arch.h"
#include "policy/arch/common.h"
#include "policy/config_source.h"

namespace rlft::policy {

void ConfigCheck::fail(const char* key, const std::string& value, const std::string& constraint) const {
  if (source_) source_->fail(key, constraint);
  throw ConfigError(fmt::format("model config ({}): {} = {}: {}", architecture_, key, value, constraint));
}

void ModelConfig::validate_trunk(const ConfigCheck& check) const {
  check(vocab_size > 0, "vocab_size", vocab_size, "must be > 0");
  check(hidden_size > 0, "hidden_size", hidden_size, "must be > 0");
  check(num_hidden_layers > 0, "num_hidden_layers", num_hidden_layers, "must be > 0");
  check(num_attention_heads > 0, "num_attention_heads", num_attention_heads, "must be > 0");
  check(num_key_value_heads > 0 && num_attention_heads % num_key_value_heads == 0, "num_key_value_heads",
        num_key_value_heads, fmt::format("must divide num_attention_heads ({})", num_attention_heads));
  check(hidden_act == "silu", "hidden_act", hidden_act, "only silu (SwiGLU) is supported");
  check(rms_norm_eps > 0.0, "rms_norm_eps", rms_norm_eps, "must be > 0");
  check(rope_theta > 0.0, "rope_theta", rope_theta, "must be > 0");
  check(initializer_range >= 0.0, "initializer_range", initializer_range, "must be >= 0");
  const auto& rs = rope_scaling.type;
  check(rs == "default" || rs == "linear" || rs == "yarn" || rs == "llama3", "rope_scaling", rs,
        "rope type must be one of default, linear, yarn, llama3");
  check(rs == "default" || rope_scaling.factor > 0.0, "rope_scaling", rope_scaling.factor, "factor must be > 0");
  if (!mla) check(head_dim > 0 && head_dim % 2 == 0, "head_dim", head_dim, "must be even and > 0");
  if (use_sliding_window)
    check(sliding_window > 0, "sliding_window", sliding_window, "must be > 0 when use_sliding_window is true");
  check(num_sink_tokens >= 0, "num_sink_tokens", num_sink_tokens, "must be >= 0");
  check(num_nextn_predict_layers >= 0, "num_nextn_predict_layers", num_nextn_predict_layers, "must be >= 0");
}

void MlaConfig::validate(const ConfigCheck& check) const {
  check(kv_lora_rank > 0, "kv_lora_rank", kv_lora_rank, "must be > 0");
  check(q_lora_rank >= 0, "q_lora_rank", q_lora_rank, "must be >= 0 (0 or null: no query compression)");
  check(qk_nope_head_dim > 0, "qk_nope_head_dim", qk_nope_head_dim, "must be > 0");
  check(qk_rope_head_dim > 0 && qk_rope_head_dim % 2 == 0, "qk_rope_head_dim", qk_rope_head_dim,
        "must be even and > 0");
  check(v_head_dim > 0, "v_head_dim", v_head_dim, "must be > 0");
}

void MoeConfig::validate(const ConfigCheck& check, const char* experts_key) const {
  if (n_routed_experts <= 0) return;
  check(num_experts_per_tok >= 1 && num_experts_per_tok <= n_routed_experts, "num_experts_per_tok", num_experts_per_tok,
        fmt::format("must be in [1, {} = {}]", experts_key, n_routed_experts));
  check(moe_intermediate_size > 0, "moe_intermediate_size", moe_intermediate_size, "must be > 0");
  check(scoring_func == "softmax" || scoring_func == "sigmoid", "scoring_func", scoring_func,
        "must be softmax or sigmoid");
  check(n_group >= 1 && n_routed_experts % n_group == 0, "n_group", n_group,
        fmt::format("must divide {} ({})", experts_key, n_routed_experts));
  check(topk_group >= 1 && topk_group <= n_group, "topk_group", topk_group,
        fmt::format("must be in [1, n_group = {}]", n_group));
  check(num_experts_per_tok <= topk_group * (n_routed_experts / n_group), "num_experts_per_tok", num_experts_per_tok,
        "exceeds the experts of topk_group groups");
  check(decoder_sparse_step >= 1, "decoder_sparse_step", decoder_sparse_step, "must be >= 1");
  check(moe_layer_freq >= 1, "moe_layer_freq", moe_layer_freq, "must be >= 1");
  check(first_k_dense_replace >= 0, "first_k_dense_replace", first_k_dense_replace, "must be >= 0");
  check(routed_scaling_factor > 0.0, "routed_scaling_factor", routed_scaling_factor, "must be > 0");
}

bool MoeConfig::is_moe_layer(int64_t i) const {
  if (n_routed_experts <= 0) return false;
  if (i < first_k_dense_replace) return false;
  if (i % moe_layer_freq != 0) return false;
  if ((i + 1) % decoder_sparse_step != 0) return false;
  for (int64_t j : mlp_only_layers)
    if (j == i) return false;
  return true;
}

void validate_model_config(const ModelConfig& config, const ArchRegistry& registry, const KeySource* source) {
  const ConfigCheck check(config.architecture, source);
  config.validate_trunk(check);
  const Architecture& arch = registry.get(config.architecture);
  if (arch.validate) arch.validate(config, check);
  // After the hook: the placement rule needs valid MoE keys (no zero step or frequency).
  bool any_dense = false;
  for (int64_t i = 0; i < config.num_hidden_layers + config.num_nextn_predict_layers; ++i)
    any_dense |= !config.moe.is_moe_layer(i);
  if (any_dense) check(config.intermediate_size > 0, "intermediate_size", config.intermediate_size, "must be > 0");
}

namespace {

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
    source.fail(
        archs.empty() ? "model_type" : "architectures",
        fmt::format("unknown architecture '{}': known architectures are {}", name, fmt::join(registry.names(), ", ")));
  return name;
}

ModelConfig read_from(const KeySource& source, const ArchRegistry& registry) {
  const Architecture& arch = registry.get(architecture_name(source, registry));
  ModelConfig config;
  config.architecture = arch.name;
  config.model_type = arch.model_type;
  arch.read(source, config);
  validate_model_config(config, registry, &source);
  return config;
}

}  // namespace

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
  arch::write_common(config, j);  // the trunk keys every architecture has
  arch.write(config, j);
  return j;
}

}  // namespace rlft::policy
