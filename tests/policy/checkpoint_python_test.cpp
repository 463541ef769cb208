// Cross-check against an independent reader/writer: scripts/reference/safetensors_check.py
// parses and writes the format by hand with json + numpy (the safetensors package is not
// used). Skipped, with a message, when /usr/bin/python3 lacks numpy.

#include "policy/checkpoint/checkpoint.h"

#include "tests/policy/checkpoint_test_util.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>

namespace ck = rlft::checkpoint;
using rlft::test::bitwise_equal;
using rlft::test::run_process;
using rlft::test::TempDir;
using rlft::test::varied_tensor;

namespace {

const std::string kPython = "/usr/bin/python3";
const std::string kScript = std::string(RLFT_SOURCE_DIR) + "/scripts/reference/safetensors_check.py";

bool have_numpy() {
  static const bool ok = run_process({kPython, "-c", "import numpy"}).exit_code == 0;
  return ok;
}

// The tensors of expected() in safetensors_check.py, computed here.
ck::TensorMap python_expected() {
  auto i = [](int64_t n) { return at::arange(n, at::kLong); };
  ck::TensorMap t;
  t["f32"] = (i(12).to(at::kFloat) * 0.1f).view({3, 4});
  t["f64"] = i(5).to(at::kDouble) / 3.0;
  t["f16"] = ((i(6) - 3).to(at::kDouble) * 0.125).to(at::kHalf).view({2, 3});
  t["bf16"] = ((i(7) - 3).to(at::kFloat) * 0.25f).to(at::kBFloat16);
  t["i64"] = i(4) * 1000003 - 5;
  t["i32"] = (i(4) * -7).to(at::kInt);
  t["i16"] = (i(3) * 300).to(at::kShort);
  t["i8"] = ((i(5) * 7).remainder(256) - 128).to(at::kChar);
  t["u8"] = (i(5) * 77).remainder(256).to(at::kByte);
  t["bool"] = i(6).remainder(3).eq(0);
  t["empty"] = at::zeros({0, 2}, at::kFloat);
  return t;
}

}  // namespace

TEST_SUITE("policy") {
  TEST_CASE("Python reading rlft's file by hand gets the same values") {
    if (!have_numpy()) {
      MESSAGE("skipped: /usr/bin/python3 has no numpy");
      return;
    }
    TempDir tmp;
    ck::TensorMap t;
    const at::ScalarType types[] = {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble, at::kLong,
                                    at::kInt,   at::kShort,    at::kChar, at::kByte,   at::kBool};
    for (const at::ScalarType type : types) t[std::string("t_") + c10::toString(type)] = varied_tensor(type, {3, 5}, 9);
    const std::string path = tmp.file("rlft.safetensors");
    ck::write_safetensors(path, t, {{"format", "pt"}});
    const auto res = run_process({kPython, kScript, "read", path});
    REQUIRE_MESSAGE(res.exit_code == 0, res.err);
    const auto j = nlohmann::json::parse(res.out);
    CHECK(j["__metadata__"]["format"] == "pt");
    for (const auto& [name, tensor] : t) {
      CAPTURE(name);
      const auto& e = j.at(name);
      CHECK(e["dtype"] == ck::safetensors_dtype_name(tensor.scalar_type()));
      CHECK(e["shape"].get<std::vector<int64_t>>() == tensor.sizes().vec());
      const at::Tensor d = tensor.to(at::kDouble).contiguous().view({-1});
      REQUIRE(e["values"].size() == static_cast<size_t>(d.numel()));
      for (int64_t k = 0; k < d.numel(); ++k) {
        const double v = d[k].item<double>();
        const auto& pv = e["values"][k];
        if (std::isnan(v)) {
          CHECK(pv == "nan");
        } else if (std::isinf(v)) {
          CHECK(pv == (v > 0 ? "inf" : "-inf"));
        } else if (pv.is_boolean()) {
          CHECK(double(pv.get<bool>()) == v);
        } else {
          CHECK(pv.get<double>() == v);
        }
      }
    }
  }

  TEST_CASE("rlft reads a file and a sharded directory that Python wrote") {
    if (!have_numpy()) {
      MESSAGE("skipped: /usr/bin/python3 has no numpy");
      return;
    }
    TempDir tmp;
    const std::string file = tmp.file("py.safetensors");
    auto res = run_process({kPython, kScript, "write", file});
    REQUIRE_MESSAGE(res.exit_code == 0, res.err);
    ck::Metadata metadata;
    CHECK(bitwise_equal(ck::read_safetensors(file, {}, &metadata), python_expected()));
    CHECK(metadata.at("source") == "python");

    res = run_process({kPython, kScript, "write-dir", tmp.file("pydir")});
    REQUIRE_MESSAGE(res.exit_code == 0, res.err);
    const auto r = ck::CheckpointReader::open(tmp.file("pydir"));
    CHECK(r.files().size() == 2);
    CHECK(bitwise_equal(r.tensors(), python_expected()));
  }
}
