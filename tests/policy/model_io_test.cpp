// Whole models to and from Hugging Face directories: bitwise save -> load for each dtype and
// sharded, tied embeddings, MTP copies, and checkpoints that do not fit the model.
#include <ATen/ATen.h>

#include <filesystem>

#include "policy/checkpoint/checkpoint.h"
#include "policy/checkpoint/config_json.h"
#include "policy/model_io.h"
#include "tests/policy/tiny_models.h"
#include "tests/support/temp_dir.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too
#include "tests/support/text_util.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

using namespace rlft;
using namespace rlft::policy;
namespace fs = std::filesystem;

namespace {

void check_same_tensors(const CausalLM& a, const CausalLM& b) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (const auto& p : pa) {
    CAPTURE(p.key());
    REQUIRE(pb.contains(p.key()));
    CHECK((p.value().scalar_type() == pb[p.key()].scalar_type()));
    CHECK(at::equal(p.value(), pb[p.key()]));
  }
  auto ba = a->named_buffers(), bb = b->named_buffers();
  for (const auto& p : ba) {
    CAPTURE(p.key());
    CHECK(at::equal(p.value(), bb[p.key()]));
  }
}

}  // namespace

TEST_CASE("save then load is bitwise identical for each dtype") {
  const auto registry = builtin_architectures();
  for (const auto& name : test::tiny_names()) {
    for (const auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
      CAPTURE(name);
      CAPTURE(dtype_name(dtype));
      test::TempDir dir;
      auto model = test::tiny_model(name, 7, dtype);
      save_model(model, dir.file("m"), {}, registry);
      ModelOptions o;
      o.dtype = dtype;
      auto back = load_model(dir.file("m"), o, registry);
      check_same_tensors(model, back);
      CHECK(checkpoint::HfConfig::load(dir.file("m")).get<std::string>("torch_dtype") == dtype_name(dtype));
    }
  }
}

TEST_CASE("a sharded save loads back bitwise, and the index lists every tensor") {
  const auto registry = builtin_architectures();
  test::TempDir dir;
  auto model = test::tiny_model("deepseek-v3");
  SaveModelOptions so;
  so.max_shard_bytes = 64 * 1024;
  save_model(model, dir.file("m"), so, registry);
  CHECK(fs::exists(dir.file("m/model.safetensors.index.json")));
  CHECK(!fs::exists(dir.file("m/model.safetensors")));
  const auto reader = checkpoint::CheckpointReader::open(dir.file("m"));
  CHECK(reader.files().size() > 2);
  auto back = load_model(dir.file("m"), {}, registry);
  check_same_tensors(model, back);
}

TEST_CASE("load converts to the compute dtype; e_score_correction_bias stays float32 on disk") {
  const auto registry = builtin_architectures();
  test::TempDir dir;
  auto model = test::tiny_model("deepseek-v3");
  SaveModelOptions so;
  so.dtype = at::kBFloat16;
  save_model(model, dir.file("m"), so, registry);
  const auto reader = checkpoint::CheckpointReader::open(dir.file("m"));
  CHECK(reader.info("model.layers.1.mlp.gate.e_score_correction_bias").dtype == "F32");
  CHECK(reader.info("model.layers.1.mlp.gate.weight").dtype == "BF16");
  auto back = load_model(dir.file("m"), {}, registry);  // float32 compute
  CHECK((back->lm_head->weight.scalar_type() == at::kFloat));
  CHECK(at::equal(back->lm_head->weight, model->lm_head->weight.to(at::kBFloat16).to(at::kFloat)));
}

TEST_CASE("tied embeddings write no lm_head; MTP copies of the embedding and head are written") {
  const auto registry = builtin_architectures();
  test::TempDir dir;
  save_model(test::tiny_model("qwen2"), dir.file("tied"), {}, registry);
  CHECK(!checkpoint::CheckpointReader::open(dir.file("tied")).contains("lm_head.weight"));

  auto ds = test::tiny_model("deepseek-v3");
  save_model(ds, dir.file("ds"), {}, registry);
  const auto reader = checkpoint::CheckpointReader::open(dir.file("ds"));
  CHECK(at::equal(reader.tensor("model.layers.3.embed_tokens.weight"), ds->model->embed_tokens->weight));
  CHECK(at::equal(reader.tensor("model.layers.3.shared_head.head.weight"), ds->lm_head->weight));
  CHECK(reader.contains("model.layers.3.eh_proj.weight"));
}

TEST_CASE("a checkpoint without MTP weights (as transformers saves DeepSeek-V3) loads with MTP off") {
  const auto registry = builtin_architectures();
  test::TempDir dir;
  auto ds = test::tiny_model("deepseek-v3");
  save_model(ds, dir.file("ds"), {}, registry);
  auto tensors = checkpoint::read_checkpoint(dir.file("ds"));
  for (auto it = tensors.begin(); it != tensors.end();)
    it = it->first.rfind("model.layers.3.", 0) == 0 ? tensors.erase(it) : std::next(it);
  checkpoint::CheckpointWriteOptions wo;
  wo.config = checkpoint::HfConfig::load(dir.file("ds")).json();
  checkpoint::write_checkpoint(dir.file("trunk"), tensors, wo);
  auto back = load_model(dir.file("trunk"), {}, registry);
  CHECK(back->model->mtp_layers.empty());
  ForwardInputs in;
  in.tokens = test::random_tokens(1, 5, ds->config().vocab_size);
  at::NoGradGuard no_grad;
  CHECK(at::equal(back->forward(in).logits, ds->forward(in).logits));
}

TEST_CASE("missing, unexpected and mis-shaped tensors are named with expected vs found") {
  const auto registry = builtin_architectures();
  test::TempDir dir;
  auto model = test::tiny_model("qwen3-moe");
  save_model(model, dir.file("m"), {}, registry);
  auto tensors = checkpoint::read_checkpoint(dir.file("m"));
  tensors.erase("model.layers.1.mlp.experts.2.down_proj.weight");
  tensors["model.norm.weight"] = at::ones({7});
  tensors["model.layers.9.mlp.gate.weight"] = at::ones({2, 2});
  checkpoint::CheckpointWriteOptions wo;
  wo.config = checkpoint::HfConfig::load(dir.file("m")).json();
  checkpoint::write_checkpoint(dir.file("bad"), tensors, wo);
  const auto e = error_of([&] { load_model(dir.file("bad"), {}, registry); });
  CHECK(e.find("3 problems") != std::string::npos);
  CHECK(e.find("model.layers.1.mlp.experts.2.down_proj.weight: missing (expected shape [48, 24])") !=
        std::string::npos);
  CHECK(e.find("model.norm.weight: shape [7] in the checkpoint, the model expects [48]") != std::string::npos);
  CHECK(e.find("model.layers.9.mlp.gate.weight: unexpected") != std::string::npos);
}

TEST_CASE("a config.json naming an unknown architecture lists the known ones") {
  const auto registry = builtin_architectures();
  test::TempDir dir;
  save_model(test::tiny_model("llama"), dir.file("m"), {}, registry);
  auto cfg = checkpoint::HfConfig::load(dir.file("m"));
  cfg.set("architectures", std::vector<std::string>{"MixtralForCausalLM"});
  cfg.save(dir.file("m"));
  const auto e = error_of([&] { load_model(dir.file("m"), {}, registry); });
  CHECK(e.find("config.json") != std::string::npos);
  CHECK(e.find("unknown architecture 'MixtralForCausalLM'") != std::string::npos);
  CHECK(e.find("LlamaForCausalLM") != std::string::npos);
}
