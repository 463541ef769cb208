#pragma once
// Whole models to and from Hugging Face checkpoint directories (config.json + safetensors,
// single file or sharded), through policy/checkpoint. Tensor names are the module tree's
// (= Hugging Face's); on top of that:
//   - tied embeddings: no lm_head.weight is written; one in the checkpoint is ignored;
//   - MTP modules: their copies of the shared embedding and head
//     (model.layers.{L+k-1}.embed_tokens.weight, .shared_head.head.weight) are written from
//     the trunk's and ignored on load; a checkpoint without MTP weights (as transformers
//     saves DeepSeek-V3) loads with MTP off;
//   - rotary_emb.inv_freq buffers of old checkpoints are ignored;
//   - e_score_correction_bias is stored in float32 whatever the weights' dtype.
// Every other missing, extra or mis-shaped tensor is an error listing them all.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "policy/causal_lm.h"

namespace rlft::policy {

class ArchRegistry;

/// Reads DIR/config.json (or a config.json path).
ModelConfig load_model_config(const std::string& dir, const ArchRegistry& registry);

/// Builds the model DIR describes and loads its weights, converted to options.dtype.
/// options.mtp is turned off when the checkpoint has no MTP weights. A PEFT adapter
/// directory (adapter_config.json, no config.json) loads its base model
/// (base_model_name_or_path) with the adapter attached, unmerged (policy/lora.h).
CausalLM load_model(const std::string& dir, const ModelOptions& options, const ArchRegistry& registry);

struct SaveModelOptions {
  /// Storage dtype of floating tensors; nullopt = the model's dtype.
  std::optional<at::ScalarType> dtype;
  /// Largest shard (bytes of tensor data); larger checkpoints are sharded with an index.
  uint64_t max_shard_bytes = 5'000'000'000ULL;
  /// Files copied into the directory, name -> source path (e.g. "tokenizer.json").
  std::map<std::string, std::string> copy_files;
};

/// Writes config.json and the weights to `dir` atomically (the parent must exist).
void save_model(const CausalLM& model, const std::string& dir, const SaveModelOptions& options,
                const ArchRegistry& registry);

/// "float32" | "bfloat16" | "float16" for the dtype (config.json's torch_dtype).
std::string dtype_name(at::ScalarType dtype);
/// The inverse; throws rlft::Error listing the known names.
at::ScalarType parse_dtype(const std::string& name);

}  // namespace rlft::policy
