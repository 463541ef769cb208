#pragma once
// LoRA adapters on a CausalLM's linear layers, and their files in PEFT's format.
//
// attach_lora() puts an adapter on every trunk Linear that `target_modules` names (PEFT's
// rule: a module path equal to a name or ending in "." + name; "all-linear" = every one),
// freezes every other parameter, and leaves `modules_to_save` (whole modules, e.g. a score
// head or embed_tokens) trainable. Adapters start as PEFT starts them: A ~ U(−1/√in, 1/√in)
// (kaiming-uniform with a = √5), B = 0, so the adapted model first equals the base; each
// tensor draws from its own generator seeded by (seed, name). The LM head and the MTP
// modules take no adapter (PEFT's all-linear leaves the output layer out; transformers has
// no MTP modules for an adapter to name).
//
// With adapters switched off (AdaptersDisabled) the model is the base again, modules_to_save
// at their values from attach time: the reference model of a KL penalty at no extra copy.
//
// On disk (PEFT's save_pretrained layout, what PEFT, vLLM and TRL open):
//   DIR/adapter_config.json         {"peft_type": "LORA", "r", "lora_alpha", "lora_dropout",
//                                    "target_modules", "modules_to_save",
//                                    "base_model_name_or_path", "use_rslora", ...}
//   DIR/adapter_model.safetensors   base_model.model.<module path>.lora_A.weight [r, in]
//                                   base_model.model.<module path>.lora_B.weight [out, r]
//                                   base_model.model.<module path>.<param> (modules_to_save)

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rlft {
class ConfigView;
}

namespace rlft::policy {

class CausalLMImpl;
class LinearImpl;

/// The `lora:` section.
struct LoraOptions {
  int64_t rank = 16;     ///< r (> 0)
  double alpha = 32.0;   ///< lora_alpha (> 0): the update is scaled by alpha / r
  double dropout = 0.0;  ///< lora_dropout on the adapter's input in training, [0, 1)
  bool rslora = false;   ///< use_rslora: scale by alpha / √r instead
  /// HF module names ("q_proj", "experts.0.down_proj", …) or "all-linear".
  std::vector<std::string> target_modules = {"all-linear"};
  /// Modules trained whole and saved in the adapter (e.g. "embed_tokens"); usually none.
  std::vector<std::string> modules_to_save;
  double scaling() const;
  static LoraOptions from_config(const ConfigView& section);
  void validate() const;  ///< throws rlft::OptionError naming the key
};

/// What attach_lora() did to a model (CausalLMImpl::lora).
struct LoraState {
  LoraOptions options;
  std::vector<std::string> adapted;  ///< module paths with an adapter, in module order
  /// Those layers, in the same order (owned by the model, as this state is).
  std::vector<LinearImpl*> layers;
  std::vector<std::string> saved;  ///< modules_to_save module paths
  /// Each modules_to_save parameter with its value at attach time (restored while adapters
  /// are off).
  std::vector<std::pair<at::Tensor, at::Tensor>> originals;
  bool enabled = true;
};

/// Module paths of the Linear layers an adapter may go on (the trunk's: not lm_head, not
/// the MTP modules), in module order.
std::vector<std::string> adaptable_modules(CausalLMImpl& model);

/// Attaches adapters as `options` say and freezes the rest (see the top of this file).
/// Throws rlft::OptionError at "target_modules" for a name that matches no adaptable layer
/// (listing the model's names) and at "modules_to_save" for one that matches no module.
void attach_lora(CausalLMImpl& model, const LoraOptions& options, uint64_t seed);

/// Adapters on or off (modules_to_save swapped with their attach-time values while off).
void set_adapters_enabled(CausalLMImpl& model, bool on);

/// Switches a model's adapters off for a scope (a no-op for a model without them).
class AdaptersDisabled {
 public:
  explicit AdaptersDisabled(CausalLMImpl& model);
  ~AdaptersDisabled();
  AdaptersDisabled(const AdaptersDisabled&) = delete;
  AdaptersDisabled& operator=(const AdaptersDisabled&) = delete;

 private:
  CausalLMImpl* model_ = nullptr;
};

/// Folds every adapter into its base weight (W += s · B·A) and drops it, leaving a plain
/// model (modules_to_save keep their trained values). All parameters require grad again.
void merge_lora(CausalLMImpl& model);

/// Parameters the adapters add (A and B) and those of modules_to_save.
int64_t lora_trainable_count(CausalLMImpl& model);

/// Whether DIR holds an adapter (adapter_config.json).
bool is_adapter_dir(const std::string& dir);

/// DIR/adapter_config.json read and checked: the options it describes and its
/// base_model_name_or_path. Throws rlft::Error naming the file and the key.
LoraOptions read_adapter_config(const std::string& dir, std::string* base_model = nullptr);

/// The base model directory of an adapter: base_model_name_or_path as a path (absolute,
/// relative to the working directory, or to DIR). Throws rlft::Error naming the key when no
/// model directory is there.
std::string adapter_base_dir(const std::string& dir);

/// Attaches the adapter of DIR (its config's rank, alpha, modules) to `model` and loads its
/// tensors, checking every one: a name the model lacks, a shape that disagrees with the base
/// layer (names the tensor and both shapes), a missing lora_B for a lora_A.
void load_adapter(CausalLMImpl& model, const std::string& dir);

/// Writes adapter_config.json and adapter_model.safetensors (float32) into `dir` (an
/// existing directory; atomicity is the caller's, e.g. checkpoint::AtomicDir).
/// `task_type`: PEFT's ("CAUSAL_LM").
void write_adapter(CausalLMImpl& model, const std::string& dir, const std::string& base_model,
                   const std::string& task_type = "CAUSAL_LM");

}  // namespace rlft::policy
