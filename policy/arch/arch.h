#pragma once
// An architecture = one file in policy/arch/ behind a few hooks (llama.cpp's pattern):
//   read         — the config.json keys it defines, with its class defaults;
//   write        — the same keys back to config.json;
//   validate     — the relations of its family keys (MlaConfig, MoeConfig), named as it names them;
//   plan         — the build: which attention and which feed-forward block layer i gets;
//   tensor_names — rlft's module paths to the checkpoint's tensor names, one row per tensor
//                  kind (what the checkpoint reader and writer use);
//   copies       — tensors a checkpoint stores twice (DeepSeek's MTP copies of the embedding).
// Shared pieces (the keys every decoder-only model has, RoPE, the Qwen-family layer plan,
// the common name rows) are in policy/arch/common.h. The registry is a value filled by
// register_builtin_architectures() (policy/arch/registry.cpp); unknown names are errors
// listing the known ones. Adding one: docs/models.md, "Adding an architecture".

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/registry.h"
#include "policy/arch/tensor_names.h"
#include "policy/decoder_layer.h"
#include "policy/model_config.h"

namespace rlft::policy {

class KeySource;

/// A tensor the checkpoint stores as a copy of one the model holds once: written from it,
/// ignored on load.
struct TensorCopy {
  std::string checkpoint;  ///< the copy's checkpoint name
  std::string source;      ///< the module path of the tensor it copies
};

struct Architecture {
  std::string name;        ///< HF class name, "DeepseekV3ForCausalLM"
  std::string model_type;  ///< config.json model_type, "deepseek_v3"
  /// Fills `config` from `source` (architecture and model_type already set).
  std::function<void(const KeySource& source, ModelConfig& config)> read;
  /// Sets this architecture's keys in `json` (which already holds the source's keys).
  /// (the trunk keys of arch::write_common are already written)
  std::function<void(const ModelConfig& config, nlohmann::json& json)> write;
  /// Checks the family blocks the architecture uses (the trunk is checked before); unset =
  /// nothing beyond the trunk.
  std::function<void(const ModelConfig& config, const ConfigCheck& check)> validate;
  /// The plan of decoder layer `index` (num_hidden_layers + k for MTP layer k).
  std::function<LayerPlan(const ModelConfig& config, int64_t index)> plan;
  /// Module path -> checkpoint name of every tensor the plans can build.
  TensorNames tensor_names;
  /// The copies a checkpoint of `config` holds (with the MTP modules built); unset = none.
  std::function<std::vector<TensorCopy>(const ModelConfig& config)> copies;
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

}  // namespace rlft::policy
