#include "policy/model_io.h"

#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "policy/arch/arch.h"
#include "policy/checkpoint/checkpoint.h"
#include "policy/checkpoint/config_json.h"
#include "policy/checkpoint/loader.h"
#include "policy/lora.h"

namespace rlft::policy {

namespace fs = std::filesystem;

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return "float32";
    case at::kBFloat16:
      return "bfloat16";
    case at::kHalf:
      return "float16";
    case at::kDouble:
      return "float64";
    default:
      throw Error(fmt::format("dtype {} is not a model dtype (float32, bfloat16, float16)", c10::toString(dtype)));
  }
}

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "float") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "half") return at::kHalf;
  throw Error(fmt::format("unknown dtype '{}': known dtypes are float32, bfloat16, float16", name));
}

namespace {

std::string config_path(const std::string& dir) {
  return fs::is_directory(dir) ? (fs::path(dir) / checkpoint::kConfigFileName).string() : dir;
}

std::vector<TensorCopy> copies_of(const Architecture& arch, const ModelConfig& c) {
  return arch.copies ? arch.copies(c) : std::vector<TensorCopy>{};
}

}  // namespace

ModelConfig load_model_config(const std::string& dir, const ArchRegistry& registry) {
  const auto hf = checkpoint::HfConfig::load(dir);
  return read_model_config_json(hf.json(), config_path(dir), registry);
}

CausalLM load_model(const std::string& dir, const ModelOptions& options, const ArchRegistry& registry) {
  if (is_adapter_dir(dir) && !fs::exists(fs::path(dir) / checkpoint::kConfigFileName)) {
    CausalLM model = load_model(adapter_base_dir(dir), options, registry);
    load_adapter(*model, dir);
    return model;
  }
  const ModelConfig config = load_model_config(dir, registry);
  const auto reader = checkpoint::CheckpointReader::open(dir);
  ModelOptions o = options;
  if (config.num_nextn_predict_layers > 0 && o.mtp) {
    const std::string first = fmt::format("model.layers.{}.", config.num_hidden_layers);
    bool found = false;
    for (const auto& n : reader.names()) found |= n.rfind(first, 0) == 0;
    if (!found) {
      log::info("{}: no MTP weights ({}*); loading without the MTP modules", dir, first);
      o.mtp = false;
    }
  }
  CausalLM model = build_model(config, o, registry);
  const Architecture& arch = registry.get(config.architecture);
  checkpoint::LoadParamsOptions lo;
  lo.checkpoint_name = [&arch](const std::string& name) { return arch.tensor_names.to_checkpoint(name); };
  for (const auto& copy : copies_of(arch, config)) lo.ignore.push_back(copy.checkpoint);
  lo.ignore.push_back(".rotary_emb.inv_freq");
  if (config.tie_word_embeddings) lo.ignore.push_back("lm_head.weight");
  if (!o.mtp)
    for (int64_t k = 0; k < config.num_nextn_predict_layers; ++k)
      lo.ignore.push_back(fmt::format("model.layers.{}.", config.num_hidden_layers + k));
  lo.share_mapped = o.share_weights;
  checkpoint::load_into_module(*model, dir, lo);
  return model;
}

void save_model(const CausalLM& model, const std::string& dir, const SaveModelOptions& options,
                const ArchRegistry& registry) {
  const at::ScalarType dtype = options.dtype.value_or(model->options().dtype);
  ModelConfig config = model->config();
  config.torch_dtype = dtype_name(dtype);
  const Architecture& arch = registry.get(config.architecture);
  checkpoint::TensorMap tensors;
  for (auto& [module_name, tensor] : checkpoint::module_tensors(*model)) {
    at::Tensor t = tensor;
    const bool keep_fp32 =
        module_name.size() > 24 && module_name.rfind(".e_score_correction_bias") == module_name.size() - 24;
    const at::ScalarType target = keep_fp32 ? at::kFloat : dtype;
    if (at::isFloatingType(t.scalar_type()) && t.scalar_type() != target) t = t.to(target);
    t = t.to(at::kCPU).contiguous();
    RLFT_CHECK(tensors.emplace(arch.tensor_names.to_checkpoint(module_name), t).second,
               "{}: two module tensors map to the checkpoint name of `{}`", arch.name, module_name);
  }
  if (model->model->mtp_layers.size() == static_cast<size_t>(config.num_nextn_predict_layers)) {
    for (const auto& copy : copies_of(arch, config))
      tensors[copy.checkpoint] = tensors.at(arch.tensor_names.to_checkpoint(copy.source));
  }
  checkpoint::CheckpointWriteOptions wo;
  wo.max_shard_bytes = options.max_shard_bytes;
  wo.config = model_config_to_json(config, registry);
  wo.copy_files = options.copy_files;
  checkpoint::write_checkpoint(dir, tensors, wo);
}

}  // namespace rlft::policy
