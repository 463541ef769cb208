#include "policy/lora.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "policy/causal_lm.h"
#include "policy/checkpoint/file_io.h"
#include "policy/checkpoint/safetensors.h"

namespace rlft::policy {
namespace fs = std::filesystem;

namespace {

constexpr const char* kAdapterConfig = "adapter_config.json";
constexpr const char* kAdapterWeights = "adapter_model.safetensors";
constexpr const char* kPeftPrefix = "base_model.model.";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// PEFT's match of a configured name against a module path.
bool names_module(const std::string& path, const std::string& name) {
  return path == name || ends_with(path, "." + name);
}

std::string leaf(const std::string& path) {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

// The Linear layers an adapter may go on, by module path, in module order: one walk of the
// module tree (see adaptable_modules()).
std::vector<std::pair<std::string, LinearImpl*>> adaptable_linears(CausalLMImpl& model) {
  const int64_t L = model.config().num_hidden_layers;
  std::vector<std::pair<std::string, LinearImpl*>> out;
  for (const auto& item : model.named_modules()) {
    const auto& path = item.key();
    auto* l = dynamic_cast<LinearImpl*>(item.value().get());
    if (!l || path == "lm_head" || ends_with(path, ".lora_A") || ends_with(path, ".lora_B")) continue;
    if (path.rfind("model.layers.", 0) == 0) {
      const int64_t layer = std::stoll(path.substr(std::string("model.layers.").size()));
      if (layer >= L) continue;  // an MTP module
    }
    out.emplace_back(path, l);
  }
  return out;
}

std::string adapter_shape(at::IntArrayRef s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  RLFT_CHECK(in.good(), "cannot read {}", p.string());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Freezes everything, then lets adapters and modules_to_save train.
void set_trainable(CausalLMImpl& model) {
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  for (const auto& item : model.named_parameters()) {
    const auto& name = item.key();
    if (name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos)
      item.value().set_requires_grad(true);
  }
  if (!model.lora) return;
  for (auto& [param, original] : model.lora->originals) param.set_requires_grad(true);
}

// Records modules_to_save: their parameters and attach-time copies.
void keep_saved_modules(CausalLMImpl& model, LoraState& state) {
  for (const auto& name : state.options.modules_to_save) {
    bool found = false;
    for (const auto& item : model.named_modules()) {
      if (item.key().empty() || !names_module(item.key(), name)) continue;
      found = true;
      state.saved.push_back(item.key());
      for (auto& p : item.value()->parameters()) {
        const at::Tensor base = p.detach();  // kept as the attach-time value (maybe the mapped file)
        p.set_data(base.clone());            // the trained copy, in its own memory
        state.originals.emplace_back(p, base);
      }
    }
    RLFT_CHECK_OPTION(found, "modules_to_save", name, "no module of the model is named so");
  }
}

}  // namespace

double LoraOptions::scaling() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

LoraOptions LoraOptions::from_config(const ConfigView& s) {
  LoraOptions o;
  o.rank = s.get<int64_t>("rank", o.rank);
  o.alpha = s.get<double>("alpha", o.alpha);
  o.dropout = s.get<double>("dropout", o.dropout);
  o.rslora = s.get<bool>("rslora", o.rslora);
  o.target_modules = s.get<std::vector<std::string>>("target_modules", o.target_modules);
  o.modules_to_save = s.get<std::vector<std::string>>("modules_to_save", o.modules_to_save);
  return o;
}

void LoraOptions::validate() const {
  RLFT_CHECK_OPTION(rank > 0, "rank", rank, "must be > 0");
  RLFT_CHECK_OPTION(alpha > 0, "alpha", alpha, "must be > 0");
  RLFT_CHECK_OPTION(dropout >= 0 && dropout < 1, "dropout", dropout, "must be in [0, 1)");
  RLFT_CHECK_OPTION(!target_modules.empty(), "target_modules", "[]",
                    "name at least one module (q_proj, …) or all-linear");
}

std::vector<std::string> adaptable_modules(CausalLMImpl& model) {
  std::vector<std::string> out;
  for (const auto& [path, layer] : adaptable_linears(model)) out.push_back(path);
  return out;
}

void attach_lora(CausalLMImpl& model, const LoraOptions& options, uint64_t seed) {
  options.validate();
  RLFT_CHECK(!model.lora, "LoRA: the model already has adapters");
  const auto candidates = adaptable_linears(model);
  std::set<std::string> chosen;
  for (const auto& name : options.target_modules) {
    bool found = false;
    for (const auto& [path, layer] : candidates)
      if (name == "all-linear" || names_module(path, name)) {
        chosen.insert(path);
        found = true;
      }
    if (!found) {
      std::set<std::string> leaves;
      for (const auto& [path, layer] : candidates) leaves.insert(leaf(path));
      throw OptionError("target_modules", name,
                        fmt::format("matches no linear module of this model; its linear modules: {} (or all-linear)",
                                    fmt::join(leaves, ", ")));
    }
  }
  auto state = std::make_shared<LoraState>();
  state->options = options;
  at::NoGradGuard no_grad;
  for (const auto& [path, l] : candidates) {
    if (!chosen.count(path)) continue;
    l->attach_adapter(options.rank, options.scaling(), options.dropout);
    const double bound = 1.0 / std::sqrt(static_cast<double>(l->options().in_features));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(name_seed(seed, path + ".lora_A.weight"));
    auto a = l->lora_A_weight();
    a.copy_(at::empty(a.sizes(), at::kFloat).uniform_(-bound, bound, gen));
    l->lora_B_weight().zero_();
    state->adapted.push_back(path);
    state->layers.push_back(l);
  }
  keep_saved_modules(model, *state);
  model.lora = state;
  set_trainable(model);
}

void set_adapters_enabled(CausalLMImpl& model, bool on) {
  if (!model.lora || model.lora->enabled == on) return;
  for (auto* l : model.lora->layers) l->set_adapter_enabled(on);
  // modules_to_save: the parameter takes the other tensor, the trained or the attach-time one
  // (both ways the same; no copy).
  at::NoGradGuard no_grad;
  for (auto& [param, original] : model.lora->originals) {
    const at::Tensor current = param.detach();
    param.set_data(original);
    original = current;
  }
  model.lora->enabled = on;
}

AdaptersDisabled::AdaptersDisabled(CausalLMImpl& model) {
  if (!model.lora || !model.lora->enabled) return;
  model_ = &model;
  set_adapters_enabled(model, false);
}

AdaptersDisabled::~AdaptersDisabled() {
  if (model_) set_adapters_enabled(*model_, true);
}

void merge_lora(CausalLMImpl& model) {
  if (!model.lora) return;
  set_adapters_enabled(model, true);
  for (auto* l : model.lora->layers) l->merge_adapter();
  model.lora.reset();
  for (auto& p : model.parameters()) p.set_requires_grad(true);
}

int64_t lora_trainable_count(CausalLMImpl& model) {
  int64_t n = 0;
  if (!model.lora) return 0;
  for (const auto& p : model.parameters())
    if (p.requires_grad()) n += p.numel();
  return n;
}

bool is_adapter_dir(const std::string& dir) {
  return fs::is_regular_file(fs::path(dir) / kAdapterConfig);
}

LoraOptions read_adapter_config(const std::string& dir, std::string* base_model) {
  const auto path = (fs::path(dir) / kAdapterConfig).string();
  RLFT_CHECK(fs::is_regular_file(path), "{}: not an adapter directory (no {})", dir, kAdapterConfig);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not JSON: {}", path, e.what()));
  }
  RLFT_CHECK(j.is_object(), "{}: not a JSON object", path);
  auto bad = [&](const std::string& key, const std::string& why) {
    return Error(fmt::format("{}: {} = {}: {}", path, key, j.contains(key) ? j[key].dump() : "(missing)", why));
  };
  const auto type = j.value("peft_type", std::string());
  if (type != "LORA") throw bad("peft_type", "rlft loads LoRA adapters (peft_type \"LORA\")");
  LoraOptions o;
  try {
    if (!j.contains("r") || !j["r"].is_number_integer() || j["r"].get<int64_t>() <= 0)
      throw bad("r", "must be an integer > 0");
    o.rank = j["r"].get<int64_t>();
    if (!j.contains("lora_alpha") || !j["lora_alpha"].is_number() || j["lora_alpha"].get<double>() <= 0)
      throw bad("lora_alpha", "must be a number > 0");
    o.alpha = j["lora_alpha"].get<double>();
    o.dropout = j.value("lora_dropout", 0.0);
    o.rslora = j.value("use_rslora", false);
    if (j.value("use_dora", false)) throw bad("use_dora", "DoRA adapters are not supported");
    if (j.value("fan_in_fan_out", false)) throw bad("fan_in_fan_out", "must be false (weights stored [out, in])");
    if (j.value("bias", std::string("none")) != "none")
      throw bad("bias", "adapters with trained biases are not supported");
    for (const char* key : {"rank_pattern", "alpha_pattern"})
      if (j.contains(key) && !j[key].is_null() && !j[key].empty())
        throw bad(key, "per-module ranks or alphas are not supported");
    o.target_modules.clear();
    const auto& t = j.contains("target_modules") ? j["target_modules"] : nlohmann::json();
    if (t.is_string()) {
      o.target_modules.push_back(t.get<std::string>());
    } else if (t.is_array()) {
      for (const auto& v : t) o.target_modules.push_back(v.get<std::string>());
    }
    o.modules_to_save.clear();
    if (j.contains("modules_to_save") && j["modules_to_save"].is_array())
      for (const auto& v : j["modules_to_save"]) o.modules_to_save.push_back(v.get<std::string>());
    if (base_model) *base_model = j.value("base_model_name_or_path", std::string());
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: {}", path, e.what()));
  }
  return o;
}

std::string adapter_base_dir(const std::string& dir) {
  std::string base;
  read_adapter_config(dir, &base);
  const auto file = (fs::path(dir) / kAdapterConfig).string();
  RLFT_CHECK(!base.empty(), "{}: base_model_name_or_path is empty: name the base model directory", file);
  for (const fs::path& p : {fs::path(base), fs::path(dir) / base})
    if (fs::is_regular_file(p / "config.json")) return p.string();
  throw Error(
      fmt::format("{}: base_model_name_or_path = \"{}\": no model directory (config.json) there, nor "
                  "under {}; copy the base model there or edit the key",
                  file, base, dir));
}

void load_adapter(CausalLMImpl& model, const std::string& dir) {
  auto options = read_adapter_config(dir);
  const auto weights_path = (fs::path(dir) / kAdapterWeights).string();
  RLFT_CHECK(fs::is_regular_file(weights_path), "{}: no {} (the adapter's tensors)", dir, kAdapterWeights);
  const auto file = checkpoint::SafetensorsFile::open(weights_path);
  const auto adaptable = adaptable_linears(model);
  const std::map<std::string, LinearImpl*> layer_at(adaptable.begin(), adaptable.end());
  std::map<std::string, at::Tensor> params;
  for (const auto& item : model.named_parameters()) params[item.key()] = item.value();

  // Sort the file's tensors into adapters (by module path) and modules_to_save parameters.
  std::vector<std::string> problems;
  std::map<std::string, std::pair<std::string, std::string>> adapters;  // path -> (A name, B name)
  std::vector<std::pair<std::string, std::string>> saved;               // (model name, file name)
  for (const auto& name : file.names()) {
    if (name.rfind(kPeftPrefix, 0) != 0) {
      problems.push_back(fmt::format("{}: not a PEFT name (expected {}<module path>…)", name, kPeftPrefix));
      continue;
    }
    const auto rest = name.substr(std::string(kPeftPrefix).size());
    bool is_a = ends_with(rest, ".lora_A.weight"), is_b = ends_with(rest, ".lora_B.weight");
    if (is_a || is_b) {
      const auto path = rest.substr(0, rest.size() - std::string(".lora_A.weight").size());
      if (!layer_at.count(path)) {
        problems.push_back(fmt::format("{}: the model has no adaptable linear layer {}", name, path));
        continue;
      }
      (is_a ? adapters[path].first : adapters[path].second) = name;
    } else if (params.count(rest)) {
      saved.emplace_back(rest, name);
    } else {
      problems.push_back(fmt::format("{}: the model has no parameter {}", name, rest));
    }
  }
  for (const auto& [path, ab] : adapters) {
    const auto* l = layer_at.at(path);
    const std::vector<int64_t> want_a{options.rank, l->options().in_features},
        want_b{l->options().out_features, options.rank};
    if (ab.first.empty() || ab.second.empty()) {
      problems.push_back(fmt::format("{}{}: {} without {}", kPeftPrefix, path, ab.first.empty() ? "lora_B" : "lora_A",
                                     ab.first.empty() ? "lora_A" : "lora_B"));
      continue;
    }
    const auto& ia = file.info(ab.first);
    const auto& ib = file.info(ab.second);
    if (ia.shape != want_a)
      problems.push_back(fmt::format("{}: shape {} in the adapter, the model's {} [{}, {}] with r = {} needs {}",
                                     ab.first, adapter_shape(ia.shape), path, l->options().out_features,
                                     l->options().in_features, options.rank, adapter_shape(want_a)));
    if (ib.shape != want_b)
      problems.push_back(fmt::format("{}: shape {} in the adapter, the model's {} [{}, {}] with r = {} needs {}",
                                     ab.second, adapter_shape(ib.shape), path, l->options().out_features,
                                     l->options().in_features, options.rank, adapter_shape(want_b)));
  }
  for (const auto& [param, name] : saved) {
    const auto& info = file.info(name);
    if (info.shape != params[param].sizes().vec())
      problems.push_back(fmt::format("{}: shape {} in the adapter, the model's {} is {}", name,
                                     adapter_shape(info.shape), param, adapter_shape(params[param].sizes())));
  }
  if (adapters.empty() && saved.empty() && problems.empty())
    problems.push_back("no adapter tensors (base_model.model.<module>.lora_A.weight / lora_B.weight)");
  if (!problems.empty()) {
    const size_t shown = std::min<size_t>(problems.size(), 20);
    std::string msg = fmt::format("{}: {} problem{} loading the adapter:", weights_path, problems.size(),
                                  problems.size() == 1 ? "" : "s");
    for (size_t i = 0; i < shown; ++i) msg += "\n  " + problems[i];
    if (shown < problems.size()) msg += fmt::format("\n  … and {} more", problems.size() - shown);
    throw Error(msg);
  }

  RLFT_CHECK(!model.lora, "{}: the model already has adapters", dir);
  auto state = std::make_shared<LoraState>();
  state->options = options;
  at::NoGradGuard no_grad;
  for (const auto& [path, l] : adaptable) {
    const auto it = adapters.find(path);
    if (it == adapters.end()) continue;
    l->attach_adapter(options.rank, options.scaling(), options.dropout);
    l->lora_A_weight().copy_(file.tensor(it->second.first));
    l->lora_B_weight().copy_(file.tensor(it->second.second));
    state->adapted.push_back(path);
    state->layers.push_back(l);
  }
  // modules_to_save: the attach-time values are the base's, the trained ones the file's.
  std::set<std::string> saved_modules;
  for (const auto& [param, name] : saved) {
    auto& p = params[param];
    state->originals.emplace_back(p, p.detach());                  // the base's tensor, kept
    p.set_data(file.tensor(name, {p.scalar_type(), p.device()}));  // its own memory, the file's values
    const auto dot = param.rfind('.');
    saved_modules.insert(param.substr(0, dot));
  }
  state->saved.assign(saved_modules.begin(), saved_modules.end());
  model.lora = state;
  set_trainable(model);
}

void write_adapter(CausalLMImpl& model, const std::string& dir, const std::string& base_model,
                   const std::string& task_type) {
  RLFT_CHECK(model.lora, "write_adapter: the model has no adapters");
  const auto& state = *model.lora;
  checkpoint::TensorMap tensors;
  std::set<std::string> leaves;
  {
    // The trained values whatever the switch says.
    const bool was = state.enabled;
    set_adapters_enabled(model, true);
    for (size_t i = 0; i < state.adapted.size(); ++i) {
      const auto& path = state.adapted[i];
      const auto* l = state.layers[i];
      tensors[kPeftPrefix + path + ".lora_A.weight"] = l->lora_A_weight().detach().to(at::kCPU, at::kFloat);
      tensors[kPeftPrefix + path + ".lora_B.weight"] = l->lora_B_weight().detach().to(at::kCPU, at::kFloat);
      leaves.insert(leaf(path));
    }
    for (const auto& item : model.named_parameters())
      for (const auto& m : state.saved)
        if (item.key().rfind(m + ".", 0) == 0 && item.key().find('.', m.size() + 1) == std::string::npos)
          tensors[kPeftPrefix + item.key()] = item.value().detach().to(at::kCPU, at::kFloat);
    set_adapters_enabled(model, was);
  }
  // target_modules as PEFT writes them: the names given, all-linear expanded to leaf names.
  std::vector<std::string> targets;
  for (const auto& t : state.options.target_modules)
    if (t != "all-linear") targets.push_back(t);
  if (std::find(state.options.target_modules.begin(), state.options.target_modules.end(), "all-linear") !=
      state.options.target_modules.end())
    targets.assign(leaves.begin(), leaves.end());
  std::sort(targets.begin(), targets.end());
  nlohmann::ordered_json j;
  j["alpha_pattern"] = nlohmann::json::object();
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = base_model;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = nullptr;
  j["lora_alpha"] = state.options.alpha;
  j["lora_dropout"] = state.options.dropout;
  j["modules_to_save"] =
      state.options.modules_to_save.empty() ? nlohmann::json(nullptr) : nlohmann::json(state.options.modules_to_save);
  j["peft_type"] = "LORA";
  j["r"] = state.options.rank;
  j["rank_pattern"] = nlohmann::json::object();
  j["revision"] = nullptr;
  j["target_modules"] = targets;
  j["task_type"] = task_type;
  j["use_dora"] = false;
  j["use_rslora"] = state.options.rslora;
  checkpoint::write_safetensors((fs::path(dir) / kAdapterWeights).string(), tensors, {{"format", "pt"}});
  checkpoint::write_file_atomic((fs::path(dir) / kAdapterConfig).string(), j.dump(2) + "\n");
}

}  // namespace rlft::policy
