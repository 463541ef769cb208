// Model configs: YAML `model:` sections and config.json read the same keys; errors name the
// key; the architecture rules for layer types; published configs read with their values.
#include <ATen/ATen.h>

#include "core/error.h"
#include "policy/config_source.h"
#include "tests/policy/tiny_models.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too
#include "tests/support/text_util.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

using namespace rlft;
using namespace rlft::policy;

namespace {

ModelConfig from_yaml(const std::string& text) {
  const auto view = ConfigView::parse(text, "m.yaml");
  return read_model_config_yaml(view.section("model"), builtin_architectures());
}

ModelConfig from_json(const std::string& text) {
  return read_model_config_json(nlohmann::json::parse(text), "ckpt/config.json", builtin_architectures());
}

// deepseek-ai/DeepSeek-V3 config.json (algorithms.md §5.1).
const char* kDeepSeekV3 = R"({
  "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "vocab_size": 129280,
  "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048, "num_hidden_layers": 61,
  "num_nextn_predict_layers": 1, "num_attention_heads": 128, "num_key_value_heads": 128, "q_lora_rank": 1536,
  "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "n_routed_experts": 256,
  "n_shared_experts": 1, "num_experts_per_tok": 8, "n_group": 8, "topk_group": 4, "routed_scaling_factor": 2.5,
  "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": true, "first_k_dense_replace": 3,
  "moe_layer_freq": 1, "ep_size": 1, "aux_loss_alpha": 0.001, "seq_aux": true, "hidden_act": "silu",
  "rms_norm_eps": 1e-06, "attention_bias": false, "attention_dropout": 0.0, "max_position_embeddings": 163840,
  "rope_theta": 10000, "rope_scaling": {"type": "yarn", "factor": 40, "beta_fast": 32, "beta_slow": 1,
  "mscale": 1.0, "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096},
  "bos_token_id": 0, "eos_token_id": 1, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
  "weight_block_size": [128, 128]}})";

// Qwen/Qwen3-30B-A3B config.json.
const char* kQwen3_30B = R"({
  "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 6144, "max_position_embeddings": 40960,
  "max_window_layers": 48, "mlp_only_layers": [], "model_type": "qwen3_moe", "moe_intermediate_size": 768,
  "norm_topk_prob": true, "num_attention_heads": 32, "num_experts": 128, "num_experts_per_tok": 8,
  "num_hidden_layers": 48, "num_key_value_heads": 4, "output_router_logits": false, "rms_norm_eps": 1e-06,
  "rope_scaling": null, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001, "sliding_window": null,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936})";

// Qwen/Qwen1.5-MoE-A2.7B config.json.
const char* kQwen15MoE = R"({
  "architectures": ["Qwen2MoeForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "decoder_sparse_step": 1, "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 2048,
  "initializer_range": 0.02, "intermediate_size": 5632, "max_position_embeddings": 8192, "max_window_layers": 21,
  "model_type": "qwen2_moe", "moe_intermediate_size": 1408, "norm_topk_prob": false, "num_attention_heads": 16,
  "num_experts": 60, "num_experts_per_tok": 4, "num_hidden_layers": 24, "num_key_value_heads": 16,
  "output_router_logits": false, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
  "shared_expert_intermediate_size": 5632, "sliding_window": 32768, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.39.0.dev0", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936})";

ParamCounts counts_of(const ModelConfig& c) {
  ModelOptions o;
  o.device = at::kMeta;  // shapes only, no memory
  return build_model(c, o, builtin_architectures())->param_counts();
}

}  // namespace

TEST_CASE("every tiny config in configs/model reads, builds and runs") {
  at::NoGradGuard no_grad;
  for (const auto& name : test::tiny_names()) {
    CAPTURE(name);
    auto model = test::tiny_model(name);
    ForwardInputs in;
    in.tokens = test::random_tokens(1, 4, model->config().vocab_size);
    const auto logits = model->forward(in).logits;
    CHECK(logits.sizes() == at::IntArrayRef({1, 4, model->config().vocab_size}));
    CHECK(at::isfinite(logits).all().item<bool>());
  }
  CHECK(test::tiny_config("deepseek-v3").use_mla());
  CHECK(test::tiny_config("qwen3-moe").qk_norm);
  CHECK(test::tiny_config("qwen2").tie_word_embeddings);
}

TEST_CASE("the architecture comes from architectures or model_type; unknown ones list the known") {
  CHECK(from_yaml("model:\n  model_type: qwen3_moe\n  num_hidden_layers: 2\n").architecture == "Qwen3MoeForCausalLM");
  const auto e = error_of([] { from_yaml("model:\n  architectures: [GPT2LMHeadModel]\n"); });
  CHECK(e.find("m.yaml:2:") != std::string::npos);
  CHECK(e.find("unknown architecture 'GPT2LMHeadModel'") != std::string::npos);
  CHECK(e.find("DeepseekV3ForCausalLM") != std::string::npos);
  CHECK(e.find("Qwen2MoeForCausalLM") != std::string::npos);
  const auto missing = error_of([] { from_json(R"({"hidden_size": 8})"); });
  CHECK(missing.find("ckpt/config.json") != std::string::npos);
  CHECK(missing.find("known architectures are") != std::string::npos);
}

TEST_CASE("a key of the wrong type is named, in YAML and in config.json") {
  const auto y = error_of([] { from_yaml("model:\n  model_type: qwen2\n  hidden_size: wide\n"); });
  CHECK(y.find("m.yaml:3:") != std::string::npos);
  CHECK(y.find("model.hidden_size") != std::string::npos);
  CHECK(y.find("expected an integer") != std::string::npos);
  const auto j = error_of([] { from_json(R"({"model_type": "qwen3_moe", "num_experts": "many"})"); });
  CHECK(j == R"(ckpt/config.json: key `num_experts` = "many": expected an integer)");
  const auto nested =
      error_of([] { from_json(R"({"model_type": "llama", "rope_scaling": {"rope_type": "yarn", "factor": "x"}})"); });
  CHECK(nested.find("key `rope_scaling.factor`") != std::string::npos);
}

TEST_CASE("an unknown YAML key is an error with a suggestion") {
  const auto e = error_of([] { from_yaml("model:\n  model_type: qwen2\n  hiden_size: 64\n"); });
  CHECK(e.find("model.hiden_size") != std::string::npos);
  CHECK(e.find("did you mean 'hidden_size'") != std::string::npos);
}

TEST_CASE("relations between keys are checked with the key named") {
  struct Row {
    const char* yaml;
    const char* expected;
  };
  const Row rows[] = {
      {"num_attention_heads: 4\n  num_key_value_heads: 3",
       "num_key_value_heads = 3: must divide num_attention_heads (4)"},
      {"num_experts: 4\n  num_experts_per_tok: 5", "num_experts_per_tok = 5: must be in [1, num_experts = 4]"},
      {"hidden_act: gelu", "hidden_act = gelu: only silu (SwiGLU) is supported"},
      {"use_sliding_window: true\n  sliding_window: 0",
       "sliding_window = 0: must be > 0 when use_sliding_window is true"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.yaml);
    const auto e = error_of([&] { from_yaml(std::string("model:\n  model_type: qwen3_moe\n  ") + row.yaml + "\n"); });
    CHECK_MESSAGE(e.find(row.expected) != std::string::npos, e);
  }
}

TEST_CASE("layer types follow first_k_dense_replace, decoder_sparse_step and mlp_only_layers") {
  auto c = test::tiny_config("deepseek-v3");
  CHECK(!is_moe_layer(c, 0));
  CHECK(is_moe_layer(c, 1));
  CHECK(is_moe_layer(c, 3));  // the MTP layer
  c = test::tiny_config("qwen2-moe", {"model.decoder_sparse_step=2", "model.mlp_only_layers=[]"});
  CHECK(!is_moe_layer(c, 0));
  CHECK(is_moe_layer(c, 1));
  CHECK(!is_moe_layer(c, 2));
  c = test::tiny_config("qwen3-moe");
  CHECK(!is_moe_layer(c, 0));  // mlp_only_layers: [0]
  CHECK(is_moe_layer(c, 1));
  CHECK(!is_moe_layer(test::tiny_config("llama"), 0));
}

TEST_CASE("config.json written from a config reads back to the same config") {
  const auto registry = builtin_architectures();
  for (const auto& name : test::tiny_names()) {
    CAPTURE(name);
    const auto c = test::tiny_config(name);
    const auto j = model_config_to_json(c, registry);
    const auto back = read_model_config_json(j, "x", registry);
    CHECK(model_config_to_json(back, registry).dump() == j.dump());
    CHECK(j["architectures"][0] == c.architecture);
  }
  // Keys rlft does not know survive a round trip.
  auto c = from_json(kQwen3_30B);
  CHECK(model_config_to_json(c, registry)["transformers_version"] == "4.51.0");
}

TEST_CASE("published configs read with their values and parameter counts") {
  const auto v3 = from_json(kDeepSeekV3);
  CHECK(v3.use_mla());
  CHECK(v3.mla->q_lora_rank == 1536);
  CHECK(v3.head_dim == 64);
  CHECK(v3.rope_scaling.type == "yarn");
  CHECK(v3.rope_scaling.factor == 40.0);
  CHECK(v3.rope_scaling.original_max_position_embeddings == 4096);
  CHECK(v3.moe.n_group == 8);
  CHECK(v3.num_nextn_predict_layers == 1);
  // 671B in the trunk, 37B activated, 11.5B unique in the MTP module (DeepSeek-V3 README).
  const auto c3 = counts_of(v3);
  CHECK(double(c3.total - c3.mtp) == doctest::Approx(671.0e9).epsilon(0.005));
  CHECK(double(c3.active) == doctest::Approx(37.0e9).epsilon(0.02));
  CHECK(double(c3.mtp) == doctest::Approx(11.5e9).epsilon(0.02));

  const auto q3 = from_json(kQwen3_30B);
  CHECK(q3.head_dim == 128);
  CHECK(q3.moe.norm_topk_prob);
  CHECK(q3.moe.n_routed_experts == 128);
  const auto cq = counts_of(q3);  // Qwen3-30B-A3B: 30.5B total, 3.3B activated
  CHECK(double(cq.total) == doctest::Approx(30.5e9).epsilon(0.01));
  CHECK(double(cq.active) == doctest::Approx(3.3e9).epsilon(0.03));

  const auto q15 = from_json(kQwen15MoE);
  CHECK(q15.qkv_bias);
  CHECK(q15.moe.shared_expert_intermediate_size == 5632);
  const auto c15 = counts_of(q15);  // Qwen1.5-MoE-A2.7B: 14.3B total, 2.7B activated
  CHECK(double(c15.total) == doctest::Approx(14.3e9).epsilon(0.01));
  CHECK(double(c15.active) == doctest::Approx(2.7e9).epsilon(0.03));
}

TEST_CASE("q_lora_rank null means a plain q_proj") {
  auto j = nlohmann::json::parse(kDeepSeekV3);
  j["q_lora_rank"] = nullptr;
  j["num_hidden_layers"] = 1;
  j["hidden_size"] = 64;
  j["num_attention_heads"] = 2;
  j["num_key_value_heads"] = 2;
  j["n_routed_experts"] = 8;
  j["n_group"] = 4;
  j["topk_group"] = 2;
  j["num_experts_per_tok"] = 2;
  j["first_k_dense_replace"] = 1;
  j["num_nextn_predict_layers"] = 0;
  const auto c = read_model_config_json(j, "x", builtin_architectures());
  CHECK(c.mla->q_lora_rank == 0);
  ModelOptions o;
  o.device = at::kMeta;
  const auto model = build_model(c, o, builtin_architectures());
  bool has_q_proj = false, has_q_a = false;
  for (const auto& p : model->named_parameters()) {
    has_q_proj |= p.key() == "model.layers.0.self_attn.q_proj.weight";
    has_q_a |= p.key().find("q_a_proj") != std::string::npos;
  }
  CHECK(has_q_proj);
  CHECK(!has_q_a);
}

TEST_CASE("parameter names are the Hugging Face names") {
  ModelOptions o;
  o.device = at::kMeta;
  const auto registry = builtin_architectures();
  std::set<std::string> names;
  for (const auto& p : build_model(test::tiny_config("deepseek-v3"), o, registry)->named_parameters())
    names.insert(p.key());
  for (const auto& b : build_model(test::tiny_config("deepseek-v3"), o, registry)->named_buffers())
    names.insert(b.key());
  for (const char* n : {"model.embed_tokens.weight",
                        "model.norm.weight",
                        "lm_head.weight",
                        "model.layers.0.input_layernorm.weight",
                        "model.layers.0.post_attention_layernorm.weight",
                        "model.layers.0.self_attn.q_a_proj.weight",
                        "model.layers.0.self_attn.q_a_layernorm.weight",
                        "model.layers.0.self_attn.q_b_proj.weight",
                        "model.layers.0.self_attn.kv_a_proj_with_mqa.weight",
                        "model.layers.0.self_attn.kv_a_layernorm.weight",
                        "model.layers.0.self_attn.kv_b_proj.weight",
                        "model.layers.0.self_attn.o_proj.weight",
                        "model.layers.0.mlp.gate_proj.weight",
                        "model.layers.1.mlp.gate.weight",
                        "model.layers.1.mlp.gate.e_score_correction_bias",
                        "model.layers.1.mlp.experts.7.down_proj.weight",
                        "model.layers.1.mlp.shared_experts.up_proj.weight",
                        "model.layers.3.enorm.weight",
                        "model.layers.3.hnorm.weight",
                        "model.layers.3.eh_proj.weight",
                        "model.layers.3.shared_head.norm.weight",
                        "model.layers.3.mlp.experts.0.gate_proj.weight"})
    CHECK_MESSAGE(names.count(n), n);
  names.clear();
  for (const auto& p : build_model(test::tiny_config("qwen2-moe"), o, registry)->named_parameters())
    names.insert(p.key());
  for (const char* n :
       {"model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.k_proj.bias",
        "model.layers.0.mlp.shared_expert.gate_proj.weight", "model.layers.0.mlp.shared_expert_gate.weight",
        "model.layers.0.mlp.experts.3.up_proj.weight", "model.layers.2.mlp.down_proj.weight"})
    CHECK_MESSAGE(names.count(n), n);
  CHECK(!names.count("model.layers.0.self_attn.o_proj.bias"));
  names.clear();
  for (const auto& p : build_model(test::tiny_config("qwen3-moe"), o, registry)->named_parameters())
    names.insert(p.key());
  CHECK(names.count("model.layers.0.self_attn.q_norm.weight"));
  CHECK(names.count("model.layers.0.self_attn.k_norm.weight"));
  CHECK(!names.count("model.layers.0.self_attn.q_proj.bias"));
  names.clear();
  for (const auto& p : build_model(test::tiny_config("qwen2"), o, registry)->named_parameters()) names.insert(p.key());
  CHECK(!names.count("lm_head.weight"));  // tied
}
