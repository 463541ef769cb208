#pragma once
// ModelConfig: a model's hyper-parameters under the names of its Hugging Face config.json.
// One struct for every architecture rlft knows; each architecture (policy/arch/) reads the
// keys it defines, with its own defaults, and writes them back. Fields an architecture does
// not use keep their defaults and are not written.
//
// Sources: a checkpoint's config.json (read_model_config_json) or a YAML `model:` section
// with the same keys (read_model_config_yaml). Both go through the same architecture hook,
// so a key means the same thing in both places.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rlft {
class ConfigView;
}

namespace rlft::policy {

class KeySource;
class ArchRegistry;

/// `rope_scaling` of config.json (transformers' rope_parameters). type "default" = none.
struct RopeScaling {
  std::string type = "default";  ///< "default" | "linear" | "yarn" | "llama3"
  double factor = 1.0;           ///< context extension factor (linear, yarn, llama3)
  double beta_fast = 32.0;       ///< yarn: extrapolation boundary (rotations)
  double beta_slow = 1.0;        ///< yarn: interpolation boundary (rotations)
  double mscale = 0.0;           ///< yarn: 0 = absent
  double mscale_all_dim = 0.0;   ///< yarn: 0 = absent; DeepSeek multiplies the softmax scale by mscale(factor, this)^2
  std::optional<double> attention_factor;  ///< yarn: explicit cos/sin scale
  int64_t original_max_position_embeddings = 0;  ///< yarn, llama3: pre-training context; 0 = absent
  double low_freq_factor = 1.0;   ///< llama3
  double high_freq_factor = 4.0;  ///< llama3
  bool truncate = true;           ///< yarn: floor/ceil the correction range
};

struct ModelConfig {
  // --- identity -----------------------------------------------------------------------------
  std::string architecture;  ///< `architectures[0]`, e.g. "DeepseekV3ForCausalLM"
  std::string model_type;    ///< e.g. "deepseek_v3"
  std::string torch_dtype = "float32";  ///< dtype of the stored weights, as config.json says

  // --- trunk --------------------------------------------------------------------------------
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;               ///< D
  int64_t intermediate_size = 0;         ///< dense MLP width
  int64_t num_hidden_layers = 0;         ///< decoder layers, MTP layers not counted
  int64_t num_attention_heads = 0;       ///< H
  int64_t num_key_value_heads = 0;       ///< H_kv (GQA); = H for MHA and MLA
  int64_t head_dim = 0;                  ///< per-head width (GQA); DeepSeek: qk_rope_head_dim
  std::string hidden_act = "silu";       ///< only SiLU (SwiGLU MLPs) is supported
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;      ///< lm_head shares model.embed_tokens.weight
  double initializer_range = 0.02;       ///< std of the normal init of linear and embedding weights
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_id;     ///< one or several
  std::optional<int64_t> pad_token_id;

  // --- attention ----------------------------------------------------------------------------
  bool qkv_bias = false;     ///< q/k/v projections carry a bias (Qwen2: always; Llama/Qwen3: attention_bias)
  bool o_bias = false;       ///< o_proj carries a bias (Llama/Qwen3/DeepSeek: attention_bias)
  bool qk_norm = false;      ///< per-head RMSNorm of q and k before RoPE (Qwen3)
  bool mlp_bias = false;     ///< Llama: biases in the MLP projections
  bool use_sliding_window = false;
  int64_t sliding_window = 0;      ///< W: a query sees keys with position > its own - W
  int64_t max_window_layers = 0;   ///< layers with index >= this use the window (Qwen semantics)
  int64_t num_sink_tokens = 0;     ///< rlft: the first S positions stay visible under the window

  // --- MLA (DeepSeek) -----------------------------------------------------------------------
  bool use_mla = false;
  int64_t q_lora_rank = 0;         ///< 0: no query compression (a plain q_proj)
  int64_t kv_lora_rank = 0;        ///< d_c, the cached latent width
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;    ///< d_h^R, the decoupled RoPE width (one key shared by all heads)
  int64_t v_head_dim = 0;
  bool rope_interleave = true;     ///< RoPE rotates adjacent pairs (DeepSeek checkpoints)

  // --- MoE ----------------------------------------------------------------------------------
  int64_t n_routed_experts = 0;        ///< E (Qwen: num_experts); 0 = dense model
  int64_t num_experts_per_tok = 0;     ///< K
  int64_t moe_intermediate_size = 0;   ///< routed expert width
  bool norm_topk_prob = false;         ///< renormalise the K gate weights to sum to 1
  std::string scoring_func = "softmax";  ///< "softmax" | "sigmoid"
  std::string topk_method = "greedy";    ///< "greedy" | "noaux_tc" (top-2 sum per group) | "group_limited_greedy" (max per group)
  double routed_scaling_factor = 1.0;
  int64_t n_group = 1;                 ///< expert groups for group-limited routing
  int64_t topk_group = 1;              ///< groups kept per token
  int64_t first_k_dense_replace = 0;   ///< DeepSeek: layers below this are dense
  int64_t moe_layer_freq = 1;          ///< DeepSeek: every n-th layer (from first_k_dense_replace) is MoE
  int64_t decoder_sparse_step = 1;     ///< Qwen: layer i is MoE when (i + 1) % step == 0
  std::vector<int64_t> mlp_only_layers;  ///< Qwen: always-dense layers
  int64_t n_shared_experts = 0;        ///< DeepSeek: shared expert width = n * moe_intermediate_size
  int64_t shared_expert_intermediate_size = 0;  ///< Qwen2-MoE: shared expert width (0 = none)
  double router_aux_loss_coef = 0.0;   ///< Qwen: Switch load-balancing loss coefficient
  double aux_loss_alpha = 0.0;         ///< DeepSeek: sequence-wise balance loss alpha
  bool seq_aux = true;                 ///< DeepSeek: the balance loss is sequence-wise

  // --- MTP ----------------------------------------------------------------------------------
  int64_t num_nextn_predict_layers = 0;  ///< D, multi-token-prediction depth

  /// config.json as read (keys rlft does not know are written back unchanged). Empty for a
  /// config built in code or from YAML.
  nlohmann::json source_json = nlohmann::json::object();

  bool is_moe() const { return n_routed_experts > 0; }
  /// Checks the relations between fields; throws rlft::ConfigError naming the key.
  void validate() const;
  /// validate() with errors located in `source`.
  void validate(const KeySource& source) const;
};

/// Reads a config.json object (`source` names it in errors: "DIR/config.json"). The
/// architecture comes from `architectures[0]`, else `model_type`.
ModelConfig read_model_config_json(const nlohmann::json& object, const std::string& source,
                                   const ArchRegistry& registry);
/// Reads a YAML `model:` section (same keys as config.json); unknown keys are errors.
ModelConfig read_model_config_yaml(const ConfigView& view, const ArchRegistry& registry);
/// config.json for `config`: its source_json with every key the architecture defines set.
nlohmann::json model_config_to_json(const ModelConfig& config, const ArchRegistry& registry);

/// Which decoder layers are MoE (the architecture's rule). Index may reach into the MTP
/// layers (num_hidden_layers + k).
bool is_moe_layer(const ModelConfig& config, int64_t layer_index);

}  // namespace rlft::policy
