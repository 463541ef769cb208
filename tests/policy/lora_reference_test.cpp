// PEFT LoRA adapters against the independent reference. scripts/reference/peft_fixture.py
// writes a random adapter (A and B non-zero) named and laid out as PEFT's save_pretrained
// writes one; scripts/reference/reference.py --adapter folds it into the base weights in
// float64 (W += s·B·A, modules_to_save replacing their tensors). For every architecture,
// `rlft model logits BASE --adapter A` (unmerged: full and through the KV cache) must match
// it, and `rlft model merge BASE A -o M` must give a plain directory the reference reads to
// the same logits, equal to the unmerged ones. Bad adapters fail naming what is wrong.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "policy/model_io.h"
#include "tests/policy/tiny_models.h"
#include "tests/support/npy.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too

using namespace rlft;

namespace {

const char* const kLoraRefPython = "/usr/bin/python3";
const char* const kLoraRefIds = "3,17,42,5,88,23,61,9,14,77,2,50";

std::string lora_ref_script(const std::string& name) {
  return std::string(RLFT_SOURCE_DIR) + "/scripts/reference/" + name;
}

// Fails loudly (never skips): the reference is part of the test set-up.
void lora_ref_require_python() {
  const auto r = test::run_process({kLoraRefPython, "-c", "import torch, numpy"});
  REQUIRE_MESSAGE(r.exit_code == 0,
                  "the reference needs Debian's python3-torch and python3-numpy "
                  "(scripts/setup.sh --test installs them): "
                      << r.err);
}

// Reads a float32 C-order .npy (as `rlft model logits` writes it).

// Every projection of the architecture: attention, dense MLP, routed and shared experts
// (Qwen2-MoE: also the shared expert's sigmoid gate, a Linear as well; never the router).
std::string lora_ref_targets(const std::string& arch) {
  if (arch == "deepseek-v3") return "q_a_proj,q_b_proj,kv_a_proj_with_mqa,kv_b_proj,o_proj,gate_proj,up_proj,down_proj";
  if (arch == "qwen2-moe") return "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,shared_expert_gate";
  return "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj";
}

// Writes an adapter for `base` into `out` with peft_fixture.py; returns its stdout.
std::string lora_ref_fixture(const std::string& base, const std::string& out, const std::string& targets,
                             const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv{
      kLoraRefPython, lora_ref_script("peft_fixture.py"), "--base", base, "--out", out, "--targets", targets};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const auto r = test::run_process(argv);
  REQUIRE_MESSAGE(r.exit_code == 0, r.out << r.err);
  REQUIRE(std::filesystem::exists(out + "/adapter_config.json"));
  REQUIRE(std::filesystem::exists(out + "/adapter_model.safetensors"));
  return r.out;
}

// `rlft model logits DIR [--adapter A] [--step]` into `out`, read back.
at::Tensor lora_ref_logits(const std::string& dir, const std::string& adapter, bool step, const std::string& out) {
  std::vector<std::string> args{"model", "logits", dir, "--ids", kLoraRefIds, "-o", out};
  if (!adapter.empty()) args.insert(args.end(), {"--adapter", adapter});
  if (step) args.push_back("--step");
  const auto r = test::run_rlft(args);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  return test::read_npy_f32(out);
}

// (a) the unmerged adapter, full and step by step, against the reference of BASE + adapter;
// (b) the merged directory against the reference of itself and against (a);
// (c) the adapter changes the base's logits (so that (a) and (b) can fail).
void lora_ref_check(const std::string& base, const std::string& adapter, const at::Tensor& base_logits,
                    const std::string& label) {
  CAPTURE(label);
  test::TempDir tmp;
  const auto full = lora_ref_logits(base, adapter, false, tmp.file("full.npy"));
  const auto step = lora_ref_logits(base, adapter, true, tmp.file("step.npy"));
  const auto py = test::run_process({kLoraRefPython, lora_ref_script("reference.py"), "--model", base, "--adapter",
                                     adapter, "--ids", kLoraRefIds, "--compare", tmp.file("full.npy"),
                                     tmp.file("step.npy"), "--tol", "1e-4"});
  MESSAGE(label << " unmerged (full, KV cache): " << py.out);
  CHECK_MESSAGE(py.exit_code == 0, py.out << py.err);

  const double changed = (full - base_logits).abs().max().item<double>();
  MESSAGE(label << ": max |adapted - base| = " << changed);
  CHECK(changed > 1e-3);
  CHECK((step - full).abs().max().item<double>() < 1e-4);

  const auto merge = test::run_rlft({"model", "merge", base, adapter, "-o", tmp.file("merged")});
  REQUIRE_MESSAGE(merge.exit_code == 0, merge.err);
  CHECK_FALSE(std::filesystem::exists(tmp.file("merged/adapter_config.json")));
  const auto merged = lora_ref_logits(tmp.file("merged"), "", false, tmp.file("merged.npy"));
  const auto pm = test::run_process({kLoraRefPython, lora_ref_script("reference.py"), "--model", tmp.file("merged"),
                                     "--ids", kLoraRefIds, "--compare", tmp.file("merged.npy"), "--tol", "1e-4"});
  MESSAGE(label << " merged: " << pm.out);
  CHECK_MESSAGE(pm.exit_code == 0, pm.out << pm.err);
  const double merged_vs_unmerged = (merged - full).abs().max().item<double>();
  MESSAGE(label << ": max |merged - unmerged| = " << merged_vs_unmerged);
  CHECK(merged_vs_unmerged <= 1e-5);
}

// A tiny model NAME saved as BASE (config.json + model.safetensors) and its logits.
at::Tensor lora_ref_save_base(const std::string& name, const std::string& base, const std::string& npy) {
  policy::save_model(test::tiny_model(name), base, {}, policy::builtin_architectures());
  return lora_ref_logits(base, "", false, npy);
}

}  // namespace

TEST_CASE("a PEFT LoRA adapter gives the reference's logits, unmerged and merged, for every architecture") {
  lora_ref_require_python();
  for (const auto& name : test::tiny_names()) {
    test::TempDir dir;
    const auto base_logits = lora_ref_save_base(name, dir.file("base"), dir.file("base.npy"));
    lora_ref_fixture(dir.file("base"), dir.file("adapter"), lora_ref_targets(name), {"--r", "4", "--alpha", "8"});
    lora_ref_check(dir.file("base"), dir.file("adapter"), base_logits, name);
  }
}

TEST_CASE("LoRA against the reference: rsLoRA scaling and modules_to_save (untied and tied embeddings)") {
  lora_ref_require_python();
  struct Case {
    std::string name, label, targets;
    std::vector<std::string> args;
  };
  const Case cases[] = {
      {"deepseek-v3",
       "deepseek-v3 rsLoRA r 8 alpha 4",
       lora_ref_targets("deepseek-v3"),
       {"--rslora", "--r", "8", "--alpha", "4", "--seed", "2"}},
      {"llama",
       "llama modules_to_save embed_tokens",
       "q_proj,v_proj",
       {"--modules-to-save", "embed_tokens", "--seed", "3"}},
      {"qwen2",
       "qwen2 (tied) modules_to_save embed_tokens",
       "q_proj,v_proj,down_proj",
       {"--modules-to-save", "embed_tokens", "--seed", "3"}},
  };
  for (const auto& c : cases) {
    test::TempDir dir;
    const auto base_logits = lora_ref_save_base(c.name, dir.file("base"), dir.file("base.npy"));
    lora_ref_fixture(dir.file("base"), dir.file("adapter"), c.targets, c.args);
    lora_ref_check(dir.file("base"), dir.file("adapter"), base_logits, c.label);
  }
}

TEST_CASE("bad LoRA adapters fail naming the file, the tensor and its shapes, or the key") {
  lora_ref_require_python();
  test::TempDir dir;
  const auto config = test::tiny_config("llama");
  policy::save_model(test::tiny_model("llama"), dir.file("base"), {}, policy::builtin_architectures());
  const auto base = dir.file("base");
  const auto logits_with = [&](const std::string& adapter) {
    return test::run_rlft({"model", "logits", base, "--ids", "3,4,5", "--adapter", adapter, "-o", dir.file("o.npy")});
  };
  const auto merge_with = [&](const std::string& adapter) {
    return test::run_rlft({"model", "merge", base, adapter, "-o", dir.file("merged")});
  };

  SUBCASE("no adapter_config.json") {
    lora_ref_fixture(base, dir.file("good"), "q_proj,v_proj");
    std::filesystem::create_directories(dir.file("noconfig"));
    std::filesystem::copy_file(dir.file("good/adapter_model.safetensors"),
                               dir.file("noconfig/adapter_model.safetensors"));
    for (const auto& r : {logits_with(dir.file("noconfig")), merge_with(dir.file("noconfig"))}) {
      CHECK(r.exit_code != 0);
      CHECK_MESSAGE(r.err.find("adapter_config.json") != std::string::npos, r.err);
    }
  }

  SUBCASE("a lora_A whose shape disagrees with the base layer") {
    const auto out = lora_ref_fixture(base, dir.file("wrong"), "q_proj,v_proj", {"--wrong-shape"});
    const std::string tensor = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
    REQUIRE_MESSAGE(out.find(tensor) != std::string::npos, out);  // the one the fixture widened
    const auto D = config.hidden_size;
    const auto got = "[4, " + std::to_string(D + 1) + "]", want = "[4, " + std::to_string(D) + "]";
    for (const auto& r : {logits_with(dir.file("wrong")), merge_with(dir.file("wrong"))}) {
      CHECK(r.exit_code != 0);
      CHECK_MESSAGE(r.err.find(tensor) != std::string::npos, r.err);
      CHECK_MESSAGE(r.err.find(got) != std::string::npos, r.err);
      CHECK_MESSAGE(r.err.find(want) != std::string::npos, r.err);
    }
    CHECK_FALSE(std::filesystem::exists(dir.file("merged")));
    // The reference refuses it too (exit status 2: bad input), naming the tensor.
    const auto py = test::run_process({kLoraRefPython, lora_ref_script("reference.py"), "--model", base, "--adapter",
                                       dir.file("wrong"), "--ids", "3,4,5"});
    CHECK(py.exit_code == 2);
    CHECK_MESSAGE(py.err.find(tensor) != std::string::npos, py.err);
  }

  SUBCASE("r: 0 in adapter_config.json") {
    lora_ref_fixture(base, dir.file("r0"), "q_proj,v_proj");
    const auto path = dir.file("r0/adapter_config.json");
    nlohmann::json j;
    {
      std::ifstream in(path);
      j = nlohmann::json::parse(in);
    }
    REQUIRE(j["r"] == 4);
    j["r"] = 0;
    std::ofstream(path) << j.dump(2);
    for (const auto& r : {logits_with(dir.file("r0")), merge_with(dir.file("r0"))}) {
      CHECK(r.exit_code != 0);
      CHECK_MESSAGE(r.err.find("adapter_config.json") != std::string::npos, r.err);
      CHECK_MESSAGE(r.err.find("r = 0") != std::string::npos, r.err);
    }
    CHECK_FALSE(std::filesystem::exists(dir.file("o.npy")));
  }
}
