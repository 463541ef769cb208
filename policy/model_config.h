#pragma once
// ModelConfig: a model's hyper-parameters under the names of its Hugging Face config.json.
// The trunk every decoder-only architecture shares, plus family blocks (MlaConfig for
// latent attention, MoeConfig for routing) that the architectures using them fill. Each
// architecture (policy/arch/) reads the keys it defines, with its own defaults, validates
// them with the key names it uses, and writes them back; fields an architecture does not use
// keep their defaults and are not written.
//
// Sources: a checkpoint's config.json (read_model_config_json) or a YAML `model:` section
// with the same keys (read_model_config_yaml). Both go through the same architecture hook,
// so a key means the same thing in both places.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
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
  std::optional<double> attention_factor;        ///< yarn: explicit cos/sin scale
  int64_t original_max_position_embeddings = 0;  ///< yarn, llama3: pre-training context; 0 = absent
  double low_freq_factor = 1.0;                  ///< llama3
  double high_freq_factor = 4.0;                 ///< llama3
  bool truncate = true;                          ///< yarn: floor/ceil the correction range
};

/// A broken relation between config keys, reported with the key named: through `source`
/// (file and line of the key) when the config was read from one, else "model config
/// (ARCH): key = value: constraint". Each owner of a group of keys validates them with it.
class ConfigCheck {
 public:
  ConfigCheck(std::string architecture, const KeySource* source)
      : architecture_(std::move(architecture)), source_(source) {}
  /// Throws rlft::ConfigError when !ok.
  template <class T>
  void operator()(bool ok, const char* key, const T& value, const std::string& constraint) const {
    if (!ok) fail(key, fmt::format("{}", value), constraint);
  }
  [[noreturn]] void fail(const char* key, const std::string& value, const std::string& constraint) const;

 private:
  std::string architecture_;
  const KeySource* source_;
};

/// Multi-head latent attention (DeepSeek-V2/V3, arXiv 2405.04434): the keys of the
/// architectures whose attention is MLA.
struct MlaConfig {
  int64_t q_lora_rank = 0;       ///< d_q; 0: no query compression (a plain q_proj)
  int64_t kv_lora_rank = 0;      ///< d_c, the cached latent width
  int64_t qk_nope_head_dim = 0;  ///< per-head query/key width without RoPE
  int64_t qk_rope_head_dim = 0;  ///< d_h^R, the decoupled RoPE width (one key shared by all heads)
  int64_t v_head_dim = 0;        ///< per-head value width
  bool rope_interleave = true;   ///< RoPE rotates adjacent pairs (DeepSeek checkpoints)
  void validate(const ConfigCheck& check) const;
};

/// Mixture-of-experts routing and layer placement. Each architecture reads the keys it
/// defines; the others keep these defaults, under which they do nothing.
struct MoeConfig {
  int64_t n_routed_experts = 0;          ///< E (Qwen: num_experts); 0 = dense model
  int64_t num_experts_per_tok = 0;       ///< K
  int64_t moe_intermediate_size = 0;     ///< routed expert width
  bool norm_topk_prob = false;           ///< renormalise the K gate weights to sum to 1
  std::string scoring_func = "softmax";  ///< "softmax" | "sigmoid"
  /// DeepSeek: "greedy" | "noaux_tc" (top-2 sum per group, bias-corrected selection) |
  /// "group_limited_greedy" (max per group)
  std::string topk_method = "greedy";
  double routed_scaling_factor = 1.0;
  int64_t n_group = 1;                          ///< expert groups for group-limited routing
  int64_t topk_group = 1;                       ///< groups kept per token
  int64_t first_k_dense_replace = 0;            ///< DeepSeek: layers below this are dense
  int64_t moe_layer_freq = 1;                   ///< DeepSeek: every n-th layer (from first_k_dense_replace) is MoE
  int64_t decoder_sparse_step = 1;              ///< Qwen: layer i is MoE when (i + 1) % step == 0
  std::vector<int64_t> mlp_only_layers;         ///< Qwen: always-dense layers
  int64_t n_shared_experts = 0;                 ///< DeepSeek: shared expert width = n * moe_intermediate_size
  int64_t shared_expert_intermediate_size = 0;  ///< Qwen2-MoE: shared expert width (0 = none)
  double router_aux_loss_coef = 0.0;            ///< Qwen: Switch load-balancing loss coefficient
  double aux_loss_alpha = 0.0;                  ///< DeepSeek: sequence-wise balance loss alpha
  bool seq_aux = true;                          ///< DeepSeek: the balance loss is sequence-wise

  /// Which layers are MoE: none when n_routed_experts is 0, else those both placement rules
  /// (DeepSeek's first_k_dense_replace / moe_layer_freq, Qwen's decoder_sparse_step /
  /// mlp_only_layers) allow.
  bool is_moe_layer(int64_t layer_index) const;
  /// `experts_key`: the architecture's config.json name of n_routed_experts, named in errors.
  void validate(const ConfigCheck& check, const char* experts_key) const;
};

struct ModelConfig {
  // --- identity -----------------------------------------------------------------------------
  std::string architecture;             ///< `architectures[0]`, e.g. "DeepseekV3ForCausalLM"
  std::string model_type;               ///< e.g. "deepseek_v3"
  std::string torch_dtype = "float32";  ///< dtype of the stored weights, as config.json says

  // --- trunk --------------------------------------------------------------------------------
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;          ///< D
  int64_t intermediate_size = 0;    ///< dense MLP width
  int64_t num_hidden_layers = 0;    ///< decoder layers, MTP layers not counted
  int64_t num_attention_heads = 0;  ///< H
  int64_t num_key_value_heads = 0;  ///< H_kv (GQA); = H for MHA and MLA
  int64_t head_dim = 0;             ///< per-head width (GQA); DeepSeek: qk_rope_head_dim
  std::string hidden_act = "silu";  ///< only SiLU (SwiGLU MLPs) is supported
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;  ///< lm_head shares model.embed_tokens.weight
  double initializer_range = 0.02;   ///< std of the normal init of linear and embedding weights
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_id;  ///< one or several
  std::optional<int64_t> pad_token_id;

  // --- attention ----------------------------------------------------------------------------
  bool qkv_bias = false;  ///< q/k/v projections carry a bias (Qwen2: always; Llama/Qwen3: attention_bias)
  bool o_bias = false;    ///< o_proj carries a bias (Llama/Qwen3/DeepSeek: attention_bias)
  bool qk_norm = false;   ///< per-head RMSNorm of q and k before RoPE (Qwen3)
  bool mlp_bias = false;  ///< Llama: biases in the MLP projections
  bool use_sliding_window = false;
  int64_t sliding_window = 0;     ///< W: a query sees keys with position > its own - W
  int64_t max_window_layers = 0;  ///< layers with index >= this use the window (Qwen semantics)
  int64_t num_sink_tokens = 0;    ///< rlft: the first S positions stay visible under the window

  // --- family blocks ------------------------------------------------------------------------
  std::optional<MlaConfig> mla;  ///< set: the attention is MLA (DeepSeek); unset: GQA
  MoeConfig moe;                 ///< routing and MoE placement; n_routed_experts 0 = dense

  // --- MTP ----------------------------------------------------------------------------------
  int64_t num_nextn_predict_layers = 0;  ///< D, multi-token-prediction depth

  /// config.json as read (keys rlft does not know are written back unchanged). Empty for a
  /// config built in code or from YAML.
  nlohmann::json source_json = nlohmann::json::object();

  bool is_moe() const { return moe.n_routed_experts > 0; }
  bool use_mla() const { return mla.has_value(); }
  /// The trunk's relations (widths, heads, norms, RoPE, window, MTP depth); the family
  /// blocks are checked by the architecture's validate hook (validate_model_config).
  void validate_trunk(const ConfigCheck& check) const;
};

/// Checks `config` as its architecture defines it: the trunk, then the architecture's own
/// hook. Throws rlft::ConfigError naming the key (located in `source` when given).
void validate_model_config(const ModelConfig& config, const ArchRegistry& registry, const KeySource* source = nullptr);

/// Reads a config.json object (`source` names it in errors: "DIR/config.json"). The
/// architecture comes from `architectures[0]`, else `model_type`.
ModelConfig read_model_config_json(const nlohmann::json& object, const std::string& source,
                                   const ArchRegistry& registry);
/// Reads a YAML `model:` section (same keys as config.json); unknown keys are errors.
ModelConfig read_model_config_yaml(const ConfigView& view, const ArchRegistry& registry);
/// config.json for `config`: its source_json with every key the architecture defines set.
nlohmann::json model_config_to_json(const ModelConfig& config, const ArchRegistry& registry);

/// Which decoder layers are MoE (config.moe.is_moe_layer). Index may reach into the MTP
/// layers (num_hidden_layers + k).
inline bool is_moe_layer(const ModelConfig& config, int64_t layer_index) {
  return config.moe.is_moe_layer(layer_index);
}

}  // namespace rlft::policy
