// Tensor-name tables: every built-in architecture's table covers every tensor of its models,
// both ways and without collisions; the pattern rules; and a save/load through a table whose
// checkpoint names differ from the module tree (Mixtral's), built from its rows alone.
#include <ATen/ATen.h>

#include <map>
#include <set>

#include "core/error.h"
#include "policy/checkpoint/checkpoint.h"
#include "policy/model_io.h"
#include "tests/policy/tiny_models.h"
#include "tests/support/temp_dir.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too
#include "tests/support/text_util.h"

using rlft::test::error_of;

using namespace rlft;
using namespace rlft::policy;

namespace {

// A config per built-in architecture, and variants that build the optional tensors (biases,
// a plain q_proj).
std::vector<std::pair<std::string, ModelConfig>> configs_of_every_architecture() {
  std::vector<std::pair<std::string, ModelConfig>> out;
  for (const auto& name : test::tiny_names()) out.emplace_back(name, test::tiny_config(name));
  out.emplace_back("llama with biases",
                   test::tiny_config("llama", {"model.attention_bias=true", "model.mlp_bias=true"}));
  out.emplace_back("deepseek-v3 plain q_proj, biases",
                   test::tiny_config("deepseek-v3", {"model.q_lora_rank=0", "model.attention_bias=true"}));
  out.emplace_back("qwen3-moe with biases", test::tiny_config("qwen3-moe", {"model.attention_bias=true"}));
  const auto qwen3 = ConfigView::parse(R"(model:
  model_type: qwen3
  vocab_size: 50
  hidden_size: 32
  intermediate_size: 48
  num_hidden_layers: 2
  num_attention_heads: 4
  num_key_value_heads: 2
  head_dim: 8
  attention_bias: true
)",
                                       "qwen3.yaml");
  out.emplace_back("qwen3", read_model_config_yaml(qwen3.section("model"), builtin_architectures()));
  return out;
}

CausalLM meta_model(const ModelConfig& c, const ArchRegistry& registry) {
  ModelOptions o;
  o.device = at::kMeta;  // shapes only
  return build_model(c, o, registry);
}

}  // namespace

TEST_CASE("every built-in architecture's name table maps each tensor of its models to a checkpoint name and back") {
  const auto registry = builtin_architectures();
  std::set<std::string> covered;
  for (const auto& [label, config] : configs_of_every_architecture()) {
    CAPTURE(label);
    const Architecture& arch = registry.get(config.architecture);
    covered.insert(arch.name);
    const auto model = meta_model(config, registry);
    std::vector<std::string> module_names;
    for (const auto& p : model->named_parameters()) module_names.push_back(p.key());
    for (const auto& b : model->named_buffers()) module_names.push_back(b.key());
    std::map<std::string, std::string> seen;  // checkpoint name -> module path
    for (const auto& name : module_names) {
      CAPTURE(name);
      std::string hf;
      REQUIRE_NOTHROW(hf = arch.tensor_names.to_checkpoint(name));
      CHECK(arch.tensor_names.to_module(hf) == name);
      CHECK(arch.tensor_names.has_checkpoint_name(hf));
      const auto [it, fresh] = seen.emplace(hf, name);
      CHECK_MESSAGE(fresh, hf << " is also the name of " << it->second);
    }
    // The built-in architectures keep the Hugging Face module tree: names are unchanged.
    for (const auto& [hf, name] : seen) CHECK(hf == name);
  }
  const auto known = registry.names();
  CHECK(covered == std::set<std::string>(known.begin(), known.end()));
}

TEST_CASE("a name table maps numbered segments in order, both ways, and names what it cannot map") {
  const TensorNames names({
      {"model.layers.#.mlp.gate.weight", "model.layers.#.block_sparse_moe.gate.weight"},
      {"model.layers.#.mlp.experts.#.gate_proj.weight", "model.layers.#.block_sparse_moe.experts.#.w1.weight"},
  });
  CHECK(names.to_checkpoint("model.layers.3.mlp.experts.12.gate_proj.weight") ==
        "model.layers.3.block_sparse_moe.experts.12.w1.weight");
  CHECK(names.to_module("model.layers.10.block_sparse_moe.gate.weight") == "model.layers.10.mlp.gate.weight");
  CHECK(!names.has_checkpoint_name("model.layers.1.mlp.gate.weight"));
  CHECK(error_of([&] {
          names.to_checkpoint("model.norm.weight");
        }).find("`model.norm.weight` has no checkpoint name") != std::string::npos);
  CHECK(error_of([&] { names.to_module("lm_head.weight"); }).find("`lm_head.weight` has no module path") !=
        std::string::npos);
  const auto twice = error_of([] { TensorNames(std::vector<TensorName>{{"a.#.w", "b.#.w"}, {"c.#.w", "b.#.w"}}); });
  CHECK(twice.find("checkpoint name `b.#.w` has two rows") != std::string::npos);
  const auto uneven = error_of([] { TensorNames(std::vector<TensorName>{{"a.#.w", "b.w"}}); });
  CHECK(uneven.find("same count of numbered segments") != std::string::npos);
}

TEST_CASE("an architecture with other checkpoint names saves and loads through its table alone") {
  // Qwen3-MoE's layers under Mixtral's expert names: what a Mixtral file would register.
  ArchRegistry registry;
  register_qwen3_moe(registry);
  Architecture mixtral_like = registry.get("Qwen3MoeForCausalLM");
  mixtral_like.name = "MixtralLikeForCausalLM";
  mixtral_like.model_type = "mixtral_like";
  TensorNames names;
  for (const auto& row : mixtral_like.tensor_names.rows()) {
    std::string hf = row.checkpoint;
    for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
             {".mlp.gate.", ".block_sparse_moe.gate."},
             {".mlp.experts.#.gate_proj.", ".block_sparse_moe.experts.#.w1."},
             {".mlp.experts.#.down_proj.", ".block_sparse_moe.experts.#.w2."},
             {".mlp.experts.#.up_proj.", ".block_sparse_moe.experts.#.w3."}}) {
      const auto at = hf.find(from);
      if (at != std::string::npos) hf.replace(at, from.size(), to);
    }
    names.add({{row.module, hf}});
  }
  mixtral_like.tensor_names = names;
  registry.add(mixtral_like);

  auto config = test::tiny_config("qwen3-moe");
  config.architecture = mixtral_like.name;
  config.model_type = mixtral_like.model_type;
  auto model = build_model(config, {}, registry);
  model->init_weights(7);
  test::TempDir dir;
  save_model(model, dir.file("m"), {}, registry);
  const auto stored = checkpoint::CheckpointReader::open(dir.file("m")).names();
  const std::set<std::string> on_disk(stored.begin(), stored.end());
  CHECK(on_disk.count("model.layers.1.block_sparse_moe.gate.weight"));
  CHECK(on_disk.count("model.layers.1.block_sparse_moe.experts.0.w1.weight"));
  CHECK(on_disk.count("model.layers.1.block_sparse_moe.experts.3.w2.weight"));
  CHECK(!on_disk.count("model.layers.1.mlp.experts.0.gate_proj.weight"));
  CHECK(on_disk.count("model.layers.0.mlp.gate_proj.weight"));  // layer 0 is dense (mlp_only_layers)

  const auto back = load_model(dir.file("m"), {}, registry);
  auto pb = back->named_parameters();
  for (const auto& p : model->named_parameters()) {
    CAPTURE(p.key());
    CHECK(at::equal(p.value(), pb[p.key()]));
  }
}
