// policy/checkpoint/loader.h and config_json.h: loading against what the model expects,
// and config.json round trips that keep every key.

#include "policy/checkpoint/config_json.h"
#include "policy/checkpoint/loader.h"

#include "tests/policy/checkpoint_test_util.h"
#include "tests/support/temp_dir.h"

#include <doctest/doctest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include "tests/support/text_util.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

namespace ck = rlft::checkpoint;
using rlft::test::bitwise_equal;
using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::TempDir;
using rlft::test::varied_tensor;

namespace {

std::vector<ck::ParamSpec> specs() {
  return {{"model.embed_tokens.weight", {16, 8}, std::nullopt},
          {"model.norm.weight", {8}, std::nullopt},
          {"lm_head.weight", {16, 8}, std::nullopt},
          {"model.position_ids", {4}, at::kLong}};
}

ck::TensorMap stored() {
  return {{"model.embed_tokens.weight", varied_tensor(at::kBFloat16, {16, 8}, 1)},
          {"model.norm.weight", varied_tensor(at::kBFloat16, {8}, 2)},
          {"lm_head.weight", varied_tensor(at::kBFloat16, {16, 8}, 3)},
          {"model.position_ids", at::arange(4, at::kLong)}};
}

struct Tiny : torch::nn::Module {
  Tiny() {
    embed = register_parameter("embed", torch::zeros({16, 8}));
    inner = register_module("model", torch::nn::Linear(torch::nn::LinearOptions(8, 4).bias(true)));
    counts = register_buffer("counts", torch::zeros({4}, torch::kLong));
  }
  torch::Tensor embed, counts;
  torch::nn::Linear inner{nullptr};
};

}  // namespace

TEST_SUITE("policy") {
  TEST_CASE("load_params returns every expected tensor in the compute dtype") {
    TempDir tmp;
    ck::write_checkpoint(tmp.file("c"), stored());
    ck::LoadParamsOptions opts;
    opts.dtype = at::kFloat;
    const ck::TensorMap t = ck::load_params(tmp.file("c"), specs(), opts);
    CHECK(t.size() == 4);
    CHECK(bitwise_equal(t.at("model.norm.weight"), stored().at("model.norm.weight").to(at::kFloat)));
    CHECK(bitwise_equal(t.at("model.position_ids"), at::arange(4, at::kLong)));
  }

  TEST_CASE("tied embeddings: lm_head.weight may be absent when the caller allows it") {
    TempDir tmp;
    ck::TensorMap s = stored();
    s.erase("lm_head.weight");
    ck::write_checkpoint(tmp.file("c"), s);
    const std::string err = error_of([&] { ck::load_params(tmp.file("c"), specs()); });
    CHECK(contains(err, "lm_head.weight: missing (expected shape [16, 8])"));
    ck::LoadParamsOptions opts;
    opts.optional_names = {"lm_head.weight"};
    const ck::TensorMap t = ck::load_params(tmp.file("c"), specs(), opts);
    CHECK(t.size() == 3);
    CHECK(!t.count("lm_head.weight"));
  }

  TEST_CASE("missing, unexpected, wrong-shape and wrong-dtype tensors are all named in one error") {
    TempDir tmp;
    ck::TensorMap s = stored();
    s.erase("model.embed_tokens.weight");
    s["model.norm.weight"] = at::ones({9}, at::kBFloat16);
    s["model.position_ids"] = at::arange(4, at::kInt);
    s["lm_head.weight"] = at::ones({16, 8}, at::kLong);
    s["model.layers.0.extra"] = at::ones({2});
    s["model.rotary_emb.inv_freq"] = at::ones({2});
    ck::write_checkpoint(tmp.file("c"), s);
    ck::LoadParamsOptions opts;
    opts.ignore = {".rotary_emb.inv_freq"};
    const std::string err = error_of([&] { ck::load_params(tmp.file("c"), specs(), opts); });
    CHECK(contains(err, tmp.file("c")));
    CHECK(contains(err, "5 problems"));
    CHECK(contains(err, "model.embed_tokens.weight: missing (expected shape [16, 8])"));
    CHECK(contains(err, "model.norm.weight: shape [9] in the checkpoint, the model expects [8]"));
    CHECK(contains(err, "model.position_ids: dtype I32 in the checkpoint, the model expects I64"));
    CHECK(contains(err, "lm_head.weight: dtype I64 in the checkpoint, the model expects a floating dtype"));
    CHECK(contains(err, "model.layers.0.extra: unexpected"));
    CHECK(!contains(err, "inv_freq"));
    opts.allow_unexpected = true;
    CHECK(contains(error_of([&] { ck::load_params(tmp.file("c"), specs(), opts); }), "4 problems"));
  }

  TEST_CASE("a module's parameters and buffers round-trip through a checkpoint") {
    TempDir tmp;
    torch::manual_seed(0);
    Tiny a;
    a.inner->weight.data().normal_();
    a.embed.data().normal_();
    a.counts.fill_(7);
    const ck::TensorMap saved = ck::module_tensors(a);
    CHECK(saved.count("model.weight"));
    CHECK(saved.count("model.bias"));
    CHECK(saved.count("counts"));
    ck::write_checkpoint(tmp.file("c"), saved);

    Tiny b;
    ck::load_into_module(b, tmp.file("c"));
    Tiny b2;
    ck::load_into_module(b2, ck::CheckpointReader::open(tmp.file("c")));
    CHECK(bitwise_equal(ck::module_tensors(b2), saved));
    CHECK(bitwise_equal(ck::module_tensors(b), saved));
    CHECK(b.inner->weight.requires_grad());

    // A module in another dtype gets converted values.
    Tiny h;
    h.inner->to(torch::kBFloat16);  // (Module::to(dtype) in LibTorch would convert the Long buffer too)
    ck::load_into_module(h, tmp.file("c"));
    CHECK(bitwise_equal(h.inner->weight, a.inner->weight.to(torch::kBFloat16)));

    ck::write_checkpoint(tmp.file("d"), ck::module_tensors(a, {"model.bias"}));
    const std::string err = error_of([&] { ck::load_into_module(b, tmp.file("d")); });
    CHECK(contains(err, "model.bias: missing (expected shape [4])"));
  }

  TEST_CASE("config.json is written back with every key it had, sorted, as Hugging Face writes it") {
    TempDir tmp;
    const std::string text = R"({
  "architectures": ["Qwen2MoeForCausalLM"],
  "model_type": "qwen2_moe",
  "hidden_size": 64,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "tie_word_embeddings": false,
  "some_future_key": {"nested": [1, 2.5, "x"]},
  "torch_dtype": "bfloat16"
})";
    const std::string path = tmp.write("config.json", text);
    ck::HfConfig c = ck::HfConfig::load(tmp.path());
    CHECK(c.get<int64_t>("hidden_size") == 64);
    CHECK(c.get<double>("rms_norm_eps") == 1e-6);
    CHECK(c.get<double>("hidden_size") == 64.0);
    CHECK(c.get<bool>("tie_word_embeddings") == false);
    CHECK(c.get<std::vector<std::string>>("architectures") == std::vector<std::string>{"Qwen2MoeForCausalLM"});
    CHECK(c.get<int>("num_experts", 8) == 8);
    c.set("num_experts", 4);
    const std::string out = tmp.file("out/config.json");
    std::filesystem::create_directory(tmp.file("out"));
    c.save(tmp.file("out"));
    const std::string written = read_all(out);
    CHECK(written ==
          "{\n"
          "  \"architectures\": [\n    \"Qwen2MoeForCausalLM\"\n  ],\n"
          "  \"hidden_size\": 64,\n"
          "  \"model_type\": \"qwen2_moe\",\n"
          "  \"num_experts\": 4,\n"
          "  \"rms_norm_eps\": 1e-06,\n"
          "  \"rope_theta\": 1000000.0,\n"
          "  \"some_future_key\": {\n    \"nested\": [\n      1,\n      2.5,\n      \"x\"\n    ]\n  },\n"
          "  \"tie_word_embeddings\": false,\n"
          "  \"torch_dtype\": \"bfloat16\"\n"
          "}\n");
    CHECK(ck::HfConfig::load(out).json() == [&] {
      auto j = nlohmann::json::parse(text);
      j["num_experts"] = 4;
      return j;
    }());
  }

  TEST_CASE("config.json errors name the file and the key") {
    TempDir tmp;
    const std::string path = tmp.write("config.json", R"({"hidden_size": "big", "n": 1.5, "ok": 2.0})");
    const ck::HfConfig c = ck::HfConfig::load(path);
    CHECK(error_of([&] { c.get<int64_t>("hidden_size"); }) ==
          path + ": key `hidden_size` = \"big\": expected an integer");
    CHECK(contains(error_of([&] { c.get<int64_t>("n"); }), "`n` = 1.5: expected an integer"));
    CHECK(c.get<int64_t>("ok") == 2);
    CHECK(error_of([&] { c.get<int64_t>("vocab_size"); }) == path + ": key `vocab_size`: missing (required)");
    tmp.write("bad.json", "{\"a\": ");
    CHECK(contains(error_of([&] { ck::HfConfig::load(tmp.file("bad.json")); }), "bad.json: not valid JSON"));
    tmp.write("arr.json", "[1]");
    CHECK(contains(error_of([&] { ck::HfConfig::load(tmp.file("arr.json")); }), "expected a JSON object"));
    CHECK(contains(error_of([&] { ck::HfConfig::load(tmp.file("none.json")); }), "none.json: cannot open"));
  }
}
