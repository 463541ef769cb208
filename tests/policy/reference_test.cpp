// The independent reference: scripts/reference/reference.py (Debian's python3-torch, written
// from the transformers modeling code, float64) checks the logits `rlft model logits` computes
// from the same safetensors checkpoint, for every architecture, full and step by step.
#include <ATen/ATen.h>

#include "policy/model_io.h"
#include "tests/policy/tiny_models.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too

using namespace rlft;

namespace {

const char* kPython = "/usr/bin/python3";

std::string script() {
  return std::string(RLFT_SOURCE_DIR) + "/scripts/reference/reference.py";
}

// Fails loudly (never skips): the reference is part of the test set-up.
void require_python_torch() {
  const auto r = test::run_process({kPython, "-c", "import torch, numpy"});
  REQUIRE_MESSAGE(r.exit_code == 0,
                  "the reference needs Debian's python3-torch and python3-numpy "
                  "(scripts/setup.sh --test installs them): "
                      << r.err);
}

void check_against_reference(const std::string& dir, const std::string& ids, const std::string& label) {
  test::TempDir tmp;
  for (bool step : {false, true}) {
    CAPTURE(label);
    CAPTURE(step);
    std::vector<std::string> args{"model", "logits", dir, "--ids", ids, "-o", tmp.file("rlft.npy")};
    if (step) args.push_back("--step");
    const auto r = test::run_rlft(args);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const auto py = test::run_process(
        {kPython, script(), "--model", dir, "--ids", ids, "--compare", tmp.file("rlft.npy"), "--tol", "1e-4"});
    MESSAGE(label << (step ? " (KV cache): " : ": ") << py.out);
    CHECK_MESSAGE(py.exit_code == 0, py.out << py.err);
  }
}

}  // namespace

TEST_CASE("rlft's logits match the independent Python reference for every architecture") {
  require_python_torch();
  const auto registry = policy::builtin_architectures();
  const std::string ids = "3,17,42,5,88,23,61,9,14,77,2,50";
  for (const auto& name : test::tiny_names()) {
    test::TempDir dir;
    policy::save_model(test::tiny_model(name), dir.file("m"), {}, registry);
    check_against_reference(dir.file("m"), ids, name);
  }
}

TEST_CASE("the reference agrees on variants: bf16 storage, no query LoRA, sliding window, YaRN off") {
  require_python_torch();
  const auto registry = policy::builtin_architectures();
  const std::string ids = "3,17,42,5,88,23,61,9,14,77,2,50,31,8";
  struct Variant {
    std::string name, label;
    std::vector<std::string> overrides;
    at::ScalarType stored;
  };
  const Variant variants[] = {
      {"deepseek-v3", "deepseek-v3 stored bf16", {}, at::kBFloat16},
      {"deepseek-v3",
       "deepseek-v3 q_lora_rank null",
       {"model.q_lora_rank=0", "model.rope_scaling.type=default"},
       at::kFloat},
      {"deepseek-v3",
       "deepseek-v3 window 5 + 1 sink",
       {"model.use_sliding_window=true", "model.sliding_window=5", "model.num_sink_tokens=1"},
       at::kFloat},
      {"qwen3-moe", "qwen3-moe window 4", {"model.use_sliding_window=true", "model.sliding_window=4"}, at::kFloat},
      {"qwen2-moe",
       "qwen2-moe yarn",
       {"model.rope_scaling={type: yarn, factor: 4.0, original_max_position_embeddings: 8}"},
       at::kFloat},
  };
  for (const auto& v : variants) {
    test::TempDir dir;
    auto model = test::tiny_model(test::tiny_config(v.name, v.overrides));
    policy::SaveModelOptions so;
    so.dtype = v.stored;
    policy::save_model(model, dir.file("m"), so, registry);
    check_against_reference(dir.file("m"), ids, v.label);
  }
}
