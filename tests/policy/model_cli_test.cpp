// `rlft model init | info | logits` as a user runs them, and their errors.
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "tests/policy/tiny_models.h"
#include "tests/support/npy.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too

using namespace rlft;

namespace {

// Reads a float32 C-order .npy (as `rlft model logits` writes it).

}  // namespace

TEST_CASE("model init, info and logits on every tiny config") {
  for (const auto& name : test::tiny_names()) {
    CAPTURE(name);
    test::TempDir dir;
    const auto init =
        test::run_rlft({"model", "init", test::tiny_config_path(name), "-o", dir.file("m"), "--seed", "3"});
    REQUIRE_MESSAGE(init.exit_code == 0, init.err);
    CHECK(std::filesystem::exists(dir.file("m/config.json")));
    CHECK(std::filesystem::exists(dir.file("m/model.safetensors")));

    const auto info = test::run_rlft({"model", "info", dir.file("m"), "--json"});
    REQUIRE_MESSAGE(info.exit_code == 0, info.err);
    const auto j = nlohmann::json::parse(info.out);
    const auto config = test::tiny_config(name);
    CHECK(j["architecture"] == config.architecture);
    CHECK(j["params_total"].get<int64_t>() > 0);
    CHECK(j["params_active_per_token"].get<int64_t>() <= j["params_total"].get<int64_t>());
    if (config.is_moe()) CHECK(j["params_active_per_token"].get<int64_t>() < j["params_total"].get<int64_t>());
    const auto text = test::run_rlft({"model", "info", dir.file("m")});
    CHECK(text.out.find("active per token") != std::string::npos);

    const auto full =
        test::run_rlft({"model", "logits", dir.file("m"), "--ids", "5,9,2,40,7", "-o", dir.file("a.npy")});
    REQUIRE_MESSAGE(full.exit_code == 0, full.err);
    const auto step =
        test::run_rlft({"model", "logits", dir.file("m"), "--ids", "5,9,2,40,7", "--step", "-o", dir.file("b.npy")});
    REQUIRE_MESSAGE(step.exit_code == 0, step.err);
    const auto a = test::read_npy_f32(dir.file("a.npy")), b = test::read_npy_f32(dir.file("b.npy"));
    CHECK(a.sizes() == at::IntArrayRef({5, config.vocab_size}));
    CHECK(test::rel_err(b, a) <= 1e-5);
  }
}

TEST_CASE("model init is deterministic in the seed") {
  test::TempDir dir;
  const auto cfg = test::tiny_config_path("qwen3-moe");
  REQUIRE(test::run_rlft({"model", "init", cfg, "-o", dir.file("a"), "--seed", "5"}).exit_code == 0);
  REQUIRE(test::run_rlft({"model", "init", cfg, "-o", dir.file("b"), "--seed", "5"}).exit_code == 0);
  REQUIRE(test::run_rlft({"model", "init", cfg, "-o", dir.file("c"), "--seed", "6"}).exit_code == 0);
  auto bytes = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  CHECK(bytes(dir.file("a/model.safetensors")) == bytes(dir.file("b/model.safetensors")));
  CHECK(bytes(dir.file("a/model.safetensors")) != bytes(dir.file("c/model.safetensors")));
}

TEST_CASE("model commands report bad input with the right exit code") {
  test::TempDir dir;
  const auto bad_arch = dir.write("bad.yaml", "model:\n  architectures: [MixtralForCausalLM]\n");
  auto r = test::run_rlft({"model", "init", bad_arch, "-o", dir.file("m")});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("unknown architecture 'MixtralForCausalLM'") != std::string::npos);
  CHECK(r.err.find("DeepseekV3ForCausalLM") != std::string::npos);

  const auto no_model = dir.write("none.yaml", "run:\n  seed: 1\n");
  r = test::run_rlft({"model", "init", no_model, "-o", dir.file("m")});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("no `model:` section") != std::string::npos);

  REQUIRE(test::run_rlft({"model", "init", test::tiny_config_path("llama"), "-o", dir.file("m")}).exit_code == 0);
  r = test::run_rlft({"model", "logits", dir.file("m"), "--ids", "1,x", "-o", dir.file("o.npy")});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("'x' is not a token id") != std::string::npos);
  r = test::run_rlft({"model", "logits", dir.file("m"), "--ids", "1,500", "-o", dir.file("o.npy")});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("token 500 is outside the vocabulary (size 97)") != std::string::npos);
  r = test::run_rlft({"model", "info", dir.file("missing")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("missing") != std::string::npos);
}
