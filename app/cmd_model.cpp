// `rlft model …`: create, inspect and run policy models in Hugging Face directories.
//   init CONFIG -o DIR [--seed N] [--dtype D]   a seeded random model from a YAML `model:` section
//                                               (or a config.json)
//   info DIR [--json]                           architecture, parameter counts, dtype, size
//   logits DIR --ids 1,2,3 [--step] [--dtype D] [--adapter A] -o FILE.npy
//                                               float32 logits [T, V] of one token sequence;
//                                               --step feeds one token at a time through the KV cache;
//                                               --adapter puts a PEFT LoRA adapter on DIR (unmerged)
//   merge BASE ADAPTER -o DIR [--dtype D]       BASE with the LoRA adapter folded in (W + (α/r)·B·A):
//                                               a plain HF model directory
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "app/cli.h"
#include "app/token_ids.h"
#include "core/config.h"
#include "core/error.h"
#include "core/threads.h"
#include "policy/arch/arch.h"
#include "policy/checkpoint/checkpoint.h"
#include "policy/checkpoint/config_json.h"
#include "policy/lora.h"
#include "policy/model_io.h"

namespace rlft::app {
namespace {

namespace fs = std::filesystem;
using policy::ArchRegistry;

// NumPy .npy v1.0 of a float32 tensor (C order).
void write_npy(const std::string& path, const at::Tensor& tensor) {
  const auto t = tensor.to(at::kCPU, at::kFloat).contiguous();
  std::string shape;
  for (int64_t d : t.sizes()) shape += fmt::format("{}, ", d);
  if (t.dim() > 1) shape.resize(shape.size() - 2);
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", shape);
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  RLFT_CHECK(out, "cannot write {}", path);
  const char magic[] = "\x93NUMPY\x01\x00";
  out.write(magic, 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.put(static_cast<char>(len & 0xff));
  out.put(static_cast<char>(len >> 8));
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * 4));
  RLFT_CHECK(out.good(), "write failed: {}", path);
}

policy::ModelConfig read_config_file(const std::string& path, const ArchRegistry& registry) {
  if (fs::path(path).extension() == ".json" || fs::is_directory(path)) return policy::load_model_config(path, registry);
  const ConfigView view = ConfigView::load(path);
  RLFT_CHECK_AS(ConfigError, view.has("model"), "{}: no `model:` section (the model's config.json keys)", path);
  return policy::read_model_config_yaml(view.section("model"), registry);
}

struct InitOptions {
  std::string config, out, dtype = "float32";
  uint64_t seed = 0;
};

void run_init(const InitOptions& o) {
  const ArchRegistry registry = policy::builtin_architectures();
  const policy::ModelConfig config = read_config_file(o.config, registry);
  policy::ModelOptions mo;
  mo.dtype = policy::parse_dtype(o.dtype);
  auto model = policy::build_model(config, mo, registry);
  model->init_weights(o.seed);
  policy::save_model(model, o.out, {}, registry);
  const auto c = model->param_counts();
  std::cout << fmt::format("wrote {} ({}, {} parameters, {} active per token, seed {})\n", o.out, config.architecture,
                           c.total, c.active, o.seed);
}

struct InfoOptions {
  std::string dir;
  bool json = false;
};

void run_info(const InfoOptions& o) {
  const ArchRegistry registry = policy::builtin_architectures();
  const policy::ModelConfig config = policy::load_model_config(o.dir, registry);
  const auto reader = checkpoint::CheckpointReader::open(o.dir);
  // Counts come from the model built on the meta device: shapes without memory.
  policy::ModelOptions mo;
  mo.device = at::kMeta;
  policy::ModelConfig probe = config;
  bool has_mtp = false;
  const std::string mtp_prefix = fmt::format("model.layers.{}.", config.num_hidden_layers);
  for (const auto& n : reader.names()) has_mtp |= n.rfind(mtp_prefix, 0) == 0;
  mo.mtp = has_mtp;
  int64_t moe_layers = 0;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) moe_layers += policy::is_moe_layer(config, i);
  const auto model = policy::build_model(probe, mo, registry);
  const auto c = model->param_counts();
  std::map<std::string, int64_t> dtypes;
  for (const auto& n : reader.names()) dtypes[reader.info(n).dtype] += 1;
  std::string dtype_list;
  for (const auto& [d, n] : dtypes)
    dtype_list += fmt::format("{}{} ({} tensors)", dtype_list.empty() ? "" : ", ", d, n);
  if (o.json) {
    nlohmann::json j;
    j["path"] = o.dir;
    j["architecture"] = config.architecture;
    j["model_type"] = config.model_type;
    j["layers"] = config.num_hidden_layers;
    j["moe_layers"] = moe_layers;
    j["experts"] = config.moe.n_routed_experts;
    j["experts_per_token"] = config.moe.num_experts_per_tok;
    j["attention"] = config.use_mla() ? "mla" : "gqa";
    j["mtp_depth"] = has_mtp ? config.num_nextn_predict_layers : 0;
    j["vocab_size"] = config.vocab_size;
    j["hidden_size"] = config.hidden_size;
    j["params_total"] = c.total;
    j["params_active_per_token"] = c.active;
    j["params_mtp"] = c.mtp;
    j["params_embedding"] = c.embedding;
    j["torch_dtype"] = config.torch_dtype;
    j["stored_dtypes"] = dtypes;
    j["tensors"] = reader.names().size();
    j["files"] = reader.files().size();
    j["bytes"] = reader.total_bytes();
    std::cout << j.dump(2) << "\n";
    return;
  }
  auto human = [](double n) {
    const char* units[] = {"", "K", "M", "B", "T"};
    int u = 0;
    while (n >= 1000.0 && u < 4) n /= 1000.0, ++u;
    return fmt::format("{:.2f}{}", n, units[u]);
  };
  std::cout << fmt::format("{}\n", o.dir);
  std::cout << fmt::format("  architecture   {} ({})\n", config.architecture, config.model_type);
  std::cout << fmt::format("  layers         {} ({} MoE, {} dense), attention {}, hidden {}, vocab {}\n",
                           config.num_hidden_layers, moe_layers, config.num_hidden_layers - moe_layers,
                           config.use_mla() ? "MLA" : "GQA", config.hidden_size, config.vocab_size);
  if (config.is_moe())
    std::cout << fmt::format("  experts        {} routed, {} per token\n", config.moe.n_routed_experts,
                             config.moe.num_experts_per_tok);
  std::cout << fmt::format("  MTP depth      {}\n", has_mtp ? config.num_nextn_predict_layers : 0);
  std::cout << fmt::format("  parameters     {} total ({}), {} active per token ({}), MTP {}\n", c.total,
                           human(double(c.total)), c.active, human(double(c.active)), c.mtp);
  std::cout << fmt::format("  dtype          {} (stored: {})\n", config.torch_dtype, dtype_list);
  std::cout << fmt::format("  size           {} bytes in {} file(s), {} tensors\n", reader.total_bytes(),
                           reader.files().size(), reader.names().size());
}

struct LogitsOptions {
  std::string dir, ids, out, dtype = "float32", adapter;
  bool step = false;
  int threads = 0;
};

void run_logits(const LogitsOptions& o) {
  apply_thread_count(o.threads);
  const auto ids = parse_token_ids(o.ids, "--ids");
  const ArchRegistry registry = policy::builtin_architectures();
  policy::ModelOptions mo;
  mo.dtype = policy::parse_dtype(o.dtype);
  mo.mtp = false;
  auto model = policy::load_model(o.dir, mo, registry);
  if (!o.adapter.empty()) policy::load_adapter(*model, o.adapter);
  model->eval();
  const int64_t V = model->config().vocab_size;
  for (int64_t id : ids)
    if (id >= V) throw UsageError(fmt::format("--ids: token {} is outside the vocabulary (size {})", id, V));
  at::NoGradGuard no_grad;
  const auto tokens = at::tensor(ids, at::kLong).unsqueeze(0);  // [1, T]
  at::Tensor logits;
  if (o.step) {
    auto cache = model->make_cache(1);
    std::vector<at::Tensor> rows;
    for (int64_t t = 0; t < tokens.size(1); ++t) {
      policy::ForwardInputs in;
      in.tokens = tokens.narrow(1, t, 1);
      in.cache = cache.get();
      rows.push_back(model->forward(in).logits[0][0]);
    }
    logits = at::stack(rows);
  } else {
    policy::ForwardInputs in;
    in.tokens = tokens;
    logits = model->forward(in).logits[0];
  }
  write_npy(o.out, logits);
  std::cout << fmt::format("wrote {}: logits [{}, {}] float32 ({}, {})\n", o.out, logits.size(0), logits.size(1),
                           o.dtype, o.step ? "one token at a time through the KV cache" : "one forward");
}

struct MergeOptions {
  std::string base, adapter, out, dtype;
};

void run_merge(const MergeOptions& o) {
  const ArchRegistry registry = policy::builtin_architectures();
  RLFT_CHECK_AS(UsageError, policy::is_adapter_dir(o.adapter), "{}: not an adapter directory (no adapter_config.json)",
                o.adapter);
  RLFT_CHECK_AS(UsageError, !policy::is_adapter_dir(o.base) || fs::exists(fs::path(o.base) / "config.json"),
                "{}: BASE is an adapter directory; give the base model directory", o.base);
  const auto config = policy::load_model_config(o.base, registry);
  policy::ModelOptions mo;
  mo.dtype = at::kFloat;  // fold in float32, store as asked
  auto model = policy::load_model(o.base, mo, registry);
  policy::load_adapter(*model, o.adapter);
  const auto n = model->lora->adapted.size();
  policy::merge_lora(*model);
  policy::SaveModelOptions so;
  so.dtype = policy::parse_dtype(o.dtype.empty() ? config.torch_dtype : o.dtype);
  for (const auto& dir : {o.adapter, o.base})
    if (fs::exists(fs::path(dir) / "tokenizer.json") && !so.copy_files.count("tokenizer.json"))
      so.copy_files["tokenizer.json"] = (fs::path(dir) / "tokenizer.json").string();
  policy::save_model(model, o.out, so, registry);
  std::cout << fmt::format("wrote {}: {} with {} adapted layers folded in ({})\n", o.out, o.base, n,
                           policy::dtype_name(*so.dtype));
}

}  // namespace

void add_model_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("model", "Create, inspect and run policy models (Hugging Face directories)");
  cmd->require_subcommand(1);

  auto init = std::make_shared<InitOptions>();
  CLI::App* i = cmd->add_subcommand("init", "A seeded random model from a YAML `model:` section (or a config.json)");
  i->add_option("config", init->config, "YAML file with a model: section, or a config.json")->required();
  i->add_option("-o,--out", init->out, "output directory (replaced atomically)")->required();
  i->add_option("--seed", init->seed, "initialisation seed")->capture_default_str();
  i->add_option("--dtype", init->dtype, "stored dtype: float32 | bfloat16 | float16")->capture_default_str();
  i->callback([init] { run_init(*init); });

  auto info = std::make_shared<InfoOptions>();
  CLI::App* f = cmd->add_subcommand("info", "Architecture, parameter counts (total, active per token), dtype, size");
  f->add_option("dir", info->dir, "model directory")->required();
  f->add_flag("--json", info->json, "print one JSON object");
  f->callback([info] { run_info(*info); });

  auto logits = std::make_shared<LogitsOptions>();
  CLI::App* l = cmd->add_subcommand("logits", "float32 logits [T, V] of one token sequence, as .npy");
  l->add_option("dir", logits->dir, "model directory")->required();
  l->add_option("--ids", logits->ids, "token ids, comma separated: 1,2,3")->required();
  l->add_option("-o,--out", logits->out, "output .npy file")->required();
  l->add_flag("--step", logits->step, "feed one token at a time through the KV cache");
  l->add_option("--dtype", logits->dtype, "compute dtype: float32 | bfloat16 | float16")->capture_default_str();
  l->add_option("--threads", logits->threads, "intra-op threads (0 = every core)");
  l->add_option("--adapter", logits->adapter, "a PEFT LoRA adapter directory to put on the model (unmerged)");
  l->callback([logits] { run_logits(*logits); });

  auto merge = std::make_shared<MergeOptions>();
  CLI::App* m = cmd->add_subcommand("merge", "Fold a LoRA adapter into its base: a plain HF model directory");
  m->add_option("base", merge->base, "base model directory")->required();
  m->add_option("adapter", merge->adapter, "PEFT adapter directory (adapter_config.json)")->required();
  m->add_option("-o,--out", merge->out, "output directory (replaced atomically)")->required();
  m->add_option("--dtype", merge->dtype, "stored dtype: float32 | bfloat16 | float16 (default: the base's)");
  m->callback([merge] { run_merge(*merge); });
}

}  // namespace rlft::app
