#pragma once
// An architecture = three hooks, one file each in policy/arch/ (llama.cpp's pattern):
//   read   — the hyper-parameters it defines in config.json, with its class defaults;
//   write  — the same keys back to config.json;
//   plan   — the build: which attention and which feed-forward block layer i gets, with
//            what options. Weight names follow from the module tree, which mirrors the
//            Hugging Face one, so there is no name table to drift.
// The registry is a value filled by register_builtin_architectures(); unknown names are
// errors listing the known ones.

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/registry.h"
#include "policy/decoder_layer.h"
#include "policy/model_config.h"

namespace rlft::policy {

class KeySource;

struct Architecture {
  std::string name;        ///< HF class name, "DeepseekV3ForCausalLM"
  std::string model_type;  ///< config.json model_type, "deepseek_v3"
  /// Fills `config` from `source` (architecture and model_type already set).
  std::function<void(const KeySource& source, ModelConfig& config)> read;
  /// Sets this architecture's keys in `json` (which already holds the source's keys).
  std::function<void(const ModelConfig& config, nlohmann::json& json)> write;
  /// The plan of decoder layer `index` (num_hidden_layers + k for MTP layer k).
  std::function<LayerPlan(const ModelConfig& config, int64_t index)> plan;
  /// True when the architecture has MTP layers stored under model.layers.{L + k}.
  bool supports_mtp = false;
};

/// Architectures by HF class name, also reachable by model_type.
class ArchRegistry {
 public:
  ArchRegistry() : by_name_("architecture") {}
  void add(const Architecture& arch);
  /// By class name ("Qwen3MoeForCausalLM") or model_type ("qwen3_moe"). Throws rlft::Error
  /// "unknown architecture 'x': known architectures are ...".
  const Architecture& get(const std::string& name) const;
  bool contains(const std::string& name) const;
  std::vector<std::string> names() const { return by_name_.names(); }

 private:
  Registry<Architecture> by_name_;
  std::map<std::string, std::string> type_to_name_;
};

/// deepseek_v3, qwen2_moe, qwen3_moe, qwen2, qwen3, llama.
void register_builtin_architectures(ArchRegistry& registry);
/// A registry holding the built-in architectures.
ArchRegistry builtin_architectures();

// One registration function per architecture file.
void register_deepseek_v3(ArchRegistry& registry);
void register_qwen2_moe(ArchRegistry& registry);
void register_qwen3_moe(ArchRegistry& registry);
void register_dense(ArchRegistry& registry);

// Shared pieces the architecture files use (arch/common.cpp).
namespace arch {
/// Reads the keys every decoder-only architecture has (vocab, widths, norms, RoPE, ids,
/// sliding window); `defaults` holds the class defaults.
void read_common(const KeySource& source, ModelConfig& config, const ModelConfig& defaults);
void write_common(const ModelConfig& config, nlohmann::json& json);
/// RoPE options for a rotation of width `dim`.
RopeOptions rope_options(const ModelConfig& config, int64_t dim, bool interleaved);
/// The sliding window of layer `index` (0 = full attention).
int64_t layer_window(const ModelConfig& config, int64_t index);
}  // namespace arch

}  // namespace rlft::policy
