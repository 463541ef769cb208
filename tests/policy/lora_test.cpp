// LoRA adapters (policy/lora.h): PEFT's initialisation (the adapted model starts as the
// base), switching off restores the base exactly, merge equals the unmerged adapters, the
// decode paths (KV cache, few-rows kernels, MLA's absorbed attention) agree with a full
// forward, only adapters get gradients, PEFT files round-trip, and bad input is named.
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "policy/checkpoint/safetensors.h"
#include "policy/lora.h"
#include "policy/model_io.h"
#include "tests/policy/tiny_models.h"
#include "tests/support/temp_dir.h"

#include "tests/support/doctest_last.h"

using namespace rlft;

namespace {

namespace fs = std::filesystem;

const std::vector<int64_t> kLoraIds = {3, 17, 42, 5, 88, 23, 61, 9, 14, 77};

policy::LoraOptions every_linear(int64_t rank = 4) {
  policy::LoraOptions o;
  o.rank = rank;
  o.alpha = 8;
  return o;
}

at::Tensor lora_logits(policy::CausalLM& model) {
  at::NoGradGuard no_grad;
  policy::ForwardInputs in;
  in.tokens = at::tensor(kLoraIds, at::kLong).unsqueeze(0);
  return model->forward(in).logits[0];
}

// One token at a time through the KV cache (the decode paths).
at::Tensor lora_step_logits(policy::CausalLM& model) {
  at::NoGradGuard no_grad;
  auto cache = model->make_cache(1);
  const auto tokens = at::tensor(kLoraIds, at::kLong).unsqueeze(0);
  std::vector<at::Tensor> rows;
  for (int64_t t = 0; t < tokens.size(1); ++t) {
    policy::ForwardInputs in;
    in.tokens = tokens.narrow(1, t, 1);
    in.cache = cache.get();
    rows.push_back(model->forward(in).logits[0][0]);
  }
  return at::stack(rows);
}

// Gives every adapter a random B (PEFT starts it at zero, where the adapter does nothing).
void randomise_b(policy::CausalLM& model, uint64_t seed) {
  at::NoGradGuard no_grad;
  int64_t i = 0;
  for (auto& p : model->named_parameters())
    if (p.key().find(".lora_B.") != std::string::npos)
      p.value().copy_(test::seeded_randn(p.value().sizes().vec(), seed + i++) * 0.05);
}

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

}  // namespace

TEST_CASE("LoRA: the adapted model starts as the base; switched off it is the base exactly") {
  for (const auto& name : test::tiny_names()) {
    CAPTURE(name);
    auto model = test::tiny_model(name);
    const auto base = lora_logits(model);
    policy::attach_lora(*model, every_linear(), 5);
    REQUIRE(model->lora);
    CHECK(!model->lora->adapted.empty());
    CHECK(lora_logits(model).equal(base));  // B = 0
    randomise_b(model, 1);
    const auto adapted = lora_logits(model);
    CHECK(max_diff(adapted, base) > 1e-3);
    {
      policy::AdaptersDisabled off(*model);
      CHECK(lora_logits(model).equal(base));
    }
    CHECK(lora_logits(model).equal(adapted));
    // Decode (KV cache, few-rows kernels, MLA's absorbed attention) with adapters on.
    CHECK(max_diff(lora_step_logits(model), adapted) <= 1e-5);
    // Merged weights compute the same function.
    policy::merge_lora(*model);
    CHECK(!model->lora);
    CHECK(max_diff(lora_logits(model), adapted) <= 1e-5);
    for (const auto& p : model->named_parameters()) CHECK(p.key().find("lora_") == std::string::npos);
  }
}

TEST_CASE("LoRA: adapters on the named modules only, not the LM head, the router or the MTP modules") {
  auto model = test::tiny_model("deepseek-v3");
  auto o = every_linear();
  o.target_modules = {"q_b_proj", "down_proj"};
  policy::attach_lora(*model, o, 1);
  const int64_t L = model->config().num_hidden_layers;
  for (const auto& path : model->lora->adapted) {
    CAPTURE(path);
    CHECK((path.size() > 9 &&
           (path.substr(path.size() - 8) == "q_b_proj" || path.substr(path.size() - 9) == "down_proj")));
    CHECK(path.find(fmt::format("model.layers.{}.", L)) == std::string::npos);
  }
  // The experts' and the shared experts' down_proj are among them.
  bool expert = false, shared = false;
  for (const auto& path : model->lora->adapted) {
    expert |= path.find(".experts.") != std::string::npos;
    shared |= path.find(".shared_experts.") != std::string::npos;
  }
  CHECK(expert);
  CHECK(shared);
  // all-linear leaves out lm_head and the MTP modules.
  auto all = test::tiny_model("deepseek-v3");
  policy::attach_lora(*all, every_linear(), 1);
  for (const auto& path : all->lora->adapted) {
    CHECK(path != "lm_head");
    CHECK(path.find(fmt::format("model.layers.{}.", L)) == std::string::npos);
    CHECK(path.substr(path.size() - 9) != ".mlp.gate");
  }
}

TEST_CASE("LoRA: only the adapters require and get gradients, experts' included") {
  for (const std::string name : {"qwen3-moe", "deepseek-v3"}) {
    CAPTURE(name);
    auto model = test::tiny_model(name);
    policy::attach_lora(*model, every_linear(), 2);
    randomise_b(model, 3);
    int64_t trainable = 0;
    for (const auto& p : model->named_parameters()) {
      const bool adapter = p.key().find(".lora_") != std::string::npos;
      CHECK_MESSAGE(p.value().requires_grad() == adapter, p.key());
      if (adapter) trainable += p.value().numel();
    }
    CHECK(policy::lora_trainable_count(*model) == trainable);
    policy::ForwardInputs in;
    in.tokens = at::tensor(kLoraIds, at::kLong).unsqueeze(0);
    model->forward(in).logits.logsumexp(-1).sum().backward();
    int64_t expert_grads = 0;
    for (const auto& p : model->named_parameters()) {
      if (!p.value().requires_grad()) {
        CHECK(!p.value().grad().defined());
        continue;
      }
      if (p.key().find(".experts.") != std::string::npos && p.value().grad().defined() &&
          p.value().grad().abs().sum().item<double>() > 0)
        ++expert_grads;
    }
    CHECK(expert_grads > 0);
  }
}

TEST_CASE("LoRA: modules_to_save train whole, are saved, and are the base's while adapters are off") {
  auto model = test::tiny_model("qwen2");
  const auto base = lora_logits(model);
  auto o = every_linear();
  o.target_modules = {"q_proj", "v_proj"};
  o.modules_to_save = {"embed_tokens"};
  policy::attach_lora(*model, o, 4);
  CHECK(model->model->embed_tokens->weight.requires_grad());
  {
    at::NoGradGuard no_grad;
    model->model->embed_tokens->weight.add_(0.01);
  }
  randomise_b(model, 9);
  const auto adapted = lora_logits(model);
  {
    policy::AdaptersDisabled off(*model);
    CHECK(lora_logits(model).equal(base));
  }
  CHECK(lora_logits(model).equal(adapted));
  test::TempDir tmp;
  fs::create_directories(tmp.file("a"));
  policy::write_adapter(*model, tmp.file("a"), "BASE");
  const auto file = checkpoint::SafetensorsFile::open(tmp.file("a/adapter_model.safetensors"));
  CHECK(file.contains("base_model.model.model.embed_tokens.weight"));
  CHECK(file.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
  CHECK(file.contains("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"));
  CHECK(!file.contains("base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight"));
  auto again = test::tiny_model("qwen2");
  policy::load_adapter(*again, tmp.file("a"));
  CHECK(max_diff(lora_logits(again), adapted) == 0.0);
  {
    policy::AdaptersDisabled off(*again);
    CHECK(lora_logits(again).equal(base));
  }
}

TEST_CASE("LoRA: PEFT files round-trip, and an adapter directory loads as base + adapter") {
  const auto registry = policy::builtin_architectures();
  for (const auto& name : test::tiny_names()) {
    CAPTURE(name);
    test::TempDir tmp;
    auto model = test::tiny_model(name);
    policy::save_model(model, tmp.file("base"), {}, registry);
    auto o = every_linear(3);
    o.rslora = true;
    policy::attach_lora(*model, o, 6);
    randomise_b(model, 2);
    const auto adapted = lora_logits(model);
    fs::create_directories(tmp.file("adapter"));
    policy::write_adapter(*model, tmp.file("adapter"), tmp.file("base"));
    const auto cfg = policy::read_adapter_config(tmp.file("adapter"));
    CHECK(cfg.rank == 3);
    CHECK(cfg.rslora);
    policy::ModelOptions mo;
    auto loaded = policy::load_model(tmp.file("adapter"), mo, registry);
    REQUIRE(loaded->lora);
    CHECK(loaded->lora->adapted == model->lora->adapted);
    CHECK(lora_logits(loaded).equal(adapted));
  }
}

TEST_CASE("LoRA: a shared (mapped) base computes as a copied one and is not copied") {
  const auto registry = policy::builtin_architectures();
  test::TempDir tmp;
  auto model = test::tiny_model("qwen3-moe");
  policy::save_model(model, tmp.file("base"), {}, registry);
  policy::ModelOptions copied, shared;
  shared.share_weights = true;
  auto a = policy::load_model(tmp.file("base"), copied, registry);
  auto b = policy::load_model(tmp.file("base"), shared, registry);
  CHECK(lora_logits(a).equal(lora_logits(b)));
  // A view of the mapping has a fixed-size storage; a copy's is ATen's own.
  CHECK(!b->model->layers[0]->named_parameters().begin()->value().storage().resizable());
  CHECK(a->model->layers[0]->named_parameters().begin()->value().storage().resizable());
  policy::attach_lora(*b, every_linear(), 1);
  randomise_b(b, 4);
  policy::attach_lora(*a, every_linear(), 1);
  randomise_b(a, 4);
  CHECK(lora_logits(a).equal(lora_logits(b)));
}

TEST_CASE("LoRA: bad options and bad adapters are named") {
  auto model = test::tiny_model("qwen2-moe");
  auto o = every_linear();
  o.target_modules = {"q_porj"};
  CHECK_THROWS_WITH_AS(policy::attach_lora(*model, o, 1),
                       doctest::Contains("matches no linear module of this model; its linear modules: "), OptionError);
  try {
    policy::attach_lora(*model, o, 1);
  } catch (const OptionError& e) {
    CHECK(e.key() == "target_modules");
    CHECK(std::string(e.what()).find("q_proj") != std::string::npos);
    CHECK(std::string(e.what()).find("shared_expert_gate") != std::string::npos);
  }
  CHECK(!model->lora);
  auto zero = every_linear();
  zero.rank = 0;
  CHECK_THROWS_WITH_AS(zero.validate(), doctest::Contains("must be > 0"), OptionError);
  auto alpha = every_linear();
  alpha.alpha = 0;
  CHECK_THROWS_WITH_AS(alpha.validate(), doctest::Contains("must be > 0"), OptionError);
  auto mts = every_linear();
  mts.modules_to_save = {"scroe"};
  CHECK_THROWS_WITH_AS(policy::attach_lora(*model, mts, 1), doctest::Contains("no module of the model is named so"),
                       OptionError);

  test::TempDir tmp;
  fs::create_directories(tmp.file("empty"));
  CHECK_THROWS_WITH_AS(policy::load_adapter(*test::tiny_model("qwen2"), tmp.file("empty")),
                       doctest::Contains("no adapter_config.json"), Error);
  // An adapter written for another width: the tensor and both shapes are named.
  auto wide = test::tiny_model(test::tiny_config("qwen2", {"model.hidden_size=48"}));
  auto to = every_linear();
  to.target_modules = {"q_proj"};
  policy::attach_lora(*wide, to, 1);
  fs::create_directories(tmp.file("wide"));
  policy::write_adapter(*wide, tmp.file("wide"), "x");
  auto narrow = test::tiny_model("qwen2");
  const int64_t D = narrow->config().hidden_size;
  CHECK_THROWS_WITH_AS(
      policy::load_adapter(*narrow, tmp.file("wide")),
      doctest::Contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight: shape [4, 48] "
                        "in the adapter, the model's model.layers.0.self_attn.q_proj"),
      Error);
  CHECK_THROWS_WITH_AS(policy::load_adapter(*narrow, tmp.file("wide")),
                       doctest::Contains(fmt::format("needs [4, {}]", D).c_str()), Error);
  CHECK(!narrow->lora);
  // Not LoRA, or r = 0, in adapter_config.json.
  for (const auto& [text, key] : std::vector<std::pair<std::string, std::string>>{
           {R"({"peft_type": "IA3", "r": 4, "lora_alpha": 8})", "peft_type"},
           {R"({"peft_type": "LORA", "r": 0, "lora_alpha": 8})", "r = 0"},
           {R"({"peft_type": "LORA", "r": 4, "lora_alpha": -1})", "lora_alpha = -1"}}) {
    std::ofstream(tmp.file("wide/adapter_config.json")) << text;
    CHECK_THROWS_WITH_AS(policy::read_adapter_config(tmp.file("wide")), doctest::Contains(key.c_str()), Error);
  }
}
