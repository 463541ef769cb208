// policy/checkpoint/checkpoint.h: checkpoint directories (single file and sharded), their
// atomic replacement (also under kill -9), and malformed indexes.

#include "policy/checkpoint/checkpoint.h"

#include "policy/checkpoint/file_io.h"
#include "tests/policy/checkpoint_test_util.h"
#include "tests/support/temp_dir.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include "tests/support/text_util.h"

// Last: LibTorch defines CHECK too (a unity batch may have included it before this file).
#include "tests/support/doctest_last.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

namespace ck = rlft::checkpoint;
namespace fs = std::filesystem;
using rlft::test::bitwise_equal;
using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::TempDir;
using rlft::test::varied_tensor;

namespace {

// A small model-like set of tensors: 1 KiB to 16 KiB each, mixed dtypes.
ck::TensorMap model_tensors(uint64_t seed, at::ScalarType type = at::kFloat) {
  ck::TensorMap t;
  t["model.embed_tokens.weight"] = varied_tensor(type, {64, 32}, seed);
  for (int l = 0; l < 3; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t[p + "self_attn.q_proj.weight"] = varied_tensor(type, {32, 32}, seed + 10 * l + 1);
    t[p + "mlp.gate.weight"] = varied_tensor(type, {8, 32}, seed + 10 * l + 2);
    t[p + "input_layernorm.weight"] = varied_tensor(type, {32}, seed + 10 * l + 3);
  }
  t["model.norm.weight"] = varied_tensor(type, {32}, seed + 100);
  t["lm_head.weight"] = varied_tensor(type, {64, 32}, seed + 101);
  return t;
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_SUITE("policy") {
  TEST_CASE("a checkpoint that fits one shard is model.safetensors without an index") {
    TempDir tmp;
    const std::string dir = tmp.file("ckpt");
    const ck::TensorMap t = model_tensors(1);
    ck::write_checkpoint(dir, t);
    CHECK(entries(dir) == std::vector<std::string>{"model.safetensors"});
    CHECK(bitwise_equal(ck::read_checkpoint(dir), t));
    CHECK(ck::CheckpointReader::open(dir).metadata().at("format") == "pt");
    // A .safetensors file opens as a checkpoint too.
    CHECK(bitwise_equal(ck::read_checkpoint(dir + "/model.safetensors"), t));
  }

  TEST_CASE("sharded output is read back bitwise identical, for each dtype") {
    for (const at::ScalarType type : {at::kFloat, at::kBFloat16, at::kHalf}) {
      CAPTURE(c10::toString(type));
      TempDir tmp;
      const std::string dir = tmp.file("ckpt");
      const ck::TensorMap t = model_tensors(7, type);
      ck::CheckpointWriteOptions opts;
      opts.max_shard_bytes = 4096 * c10::elementSize(type) / 2;
      ck::write_checkpoint(dir, t, opts);

      const auto files = entries(dir);
      REQUIRE(files.size() > 2);
      const size_t n_shards = files.size() - 1;
      CHECK(files.back() == "model.safetensors.index.json");
      CHECK(files.front() == fmt::format("model-00001-of-{:05d}.safetensors", n_shards));
      for (size_t i = 0; i < n_shards; ++i) {
        const std::string shard = fmt::format("{}/model-{:05d}-of-{:05d}.safetensors", dir, i + 1, n_shards);
        // No shard exceeds the limit unless it holds a single tensor larger than it.
        const auto sf = ck::SafetensorsFile::open(shard);
        uint64_t bytes = 0;
        for (const auto& name : sf.names()) bytes += sf.info(name).n_bytes();
        CHECK((bytes <= opts.max_shard_bytes || sf.names().size() == 1));
      }
      const auto index = nlohmann::json::parse(read_all(dir + "/model.safetensors.index.json"));
      uint64_t total = 0;
      for (const auto& [_, v] : t) total += v.numel() * v.element_size();
      CHECK(index["metadata"]["total_size"] == total);
      CHECK(index["weight_map"].size() == t.size());
      CHECK(index["weight_map"]["lm_head.weight"] ==
            "model-00001-of-" + fmt::format("{:05d}", n_shards) + ".safetensors");

      const ck::CheckpointReader r = ck::CheckpointReader::open(dir);
      CHECK(r.files().size() == n_shards);
      CHECK(r.total_bytes() == total);
      CHECK(bitwise_equal(r.tensors(), t));
      ck::LoadOptions to_f32;
      to_f32.dtype = at::kFloat;
      CHECK(bitwise_equal(r.tensor("model.norm.weight", to_f32), t.at("model.norm.weight").to(at::kFloat)));
    }
  }

  TEST_CASE("a tensor larger than the shard limit gets a shard of its own") {
    TempDir tmp;
    const std::string dir = tmp.file("ckpt");
    const ck::TensorMap t = {{"a", at::ones({10})}, {"b", at::ones({1000})}, {"c", at::ones({10})}};
    ck::CheckpointWriteOptions opts;
    opts.max_shard_bytes = 100;
    ck::write_checkpoint(dir, t, opts);
    const auto r = ck::CheckpointReader::open(dir);
    CHECK(r.files().size() == 3);
    CHECK(r.file_of("b") != r.file_of("a"));
    CHECK(bitwise_equal(r.tensors(), t));
  }

  TEST_CASE("rewriting a checkpoint replaces the whole directory: old shards do not linger") {
    TempDir tmp;
    const std::string dir = tmp.file("ckpt");
    ck::CheckpointWriteOptions sharded;
    sharded.max_shard_bytes = 2048;
    ck::write_checkpoint(dir, model_tensors(1), sharded);
    CHECK(entries(dir).size() > 2);
    ck::CheckpointWriteOptions single;
    single.config = nlohmann::json{{"model_type", "qwen2_moe"}};
    single.extra_files["generation_config.json"] = "{}\n";
    single.copy_files["tokenizer.json"] = tmp.write("tok.json", "{\"v\": 1}");
    ck::write_checkpoint(dir, model_tensors(2), single);
    CHECK(entries(dir) ==
          std::vector<std::string>{"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"});
    CHECK(bitwise_equal(ck::read_checkpoint(dir), model_tensors(2)));
    CHECK(entries(tmp.path()) == std::vector<std::string>{"ckpt", "tok.json"});  // no temp dirs left
  }

  TEST_CASE("a failed write leaves the previous checkpoint in place") {
    TempDir tmp;
    const std::string dir = tmp.file("ckpt");
    ck::write_checkpoint(dir, model_tensors(1));
    ck::TensorMap bad = model_tensors(2);
    bad["z.complex"] = at::zeros({2}, at::kComplexFloat);
    const std::string err = error_of([&] { ck::write_checkpoint(dir, bad); });
    CHECK(contains(err, "z.complex"));
    CHECK(bitwise_equal(ck::read_checkpoint(dir), model_tensors(1)));
    CHECK(entries(tmp.path()) == std::vector<std::string>{"ckpt"});
  }

  TEST_CASE("the two-rename fallback swaps directories too, and a crash between them is repaired") {
    TempDir tmp;
    const std::string dir = tmp.file("ckpt");
    ck::write_checkpoint(dir, model_tensors(1));
    ck::write_checkpoint(tmp.file("next"), model_tensors(2));
    ck::detail::swap_dir_into_place(tmp.file("next"), dir, /*use_exchange=*/false);
    CHECK(bitwise_equal(ck::read_checkpoint(dir), model_tensors(2)));
    CHECK(entries(tmp.path()) == std::vector<std::string>{"ckpt"});

    // Simulate a kill between "old aside" and "new in": only the aside copy exists, owned by
    // a process that no longer exists (a pid above pid_max).
    char host[256] = {};
    ::gethostname(host, sizeof host);
    const std::string aside = tmp.file(std::string(".ckpt.old-") + host + "-99999999-1");
    fs::rename(dir, aside);
    { ck::AtomicDir next(dir); }  // any writer for this destination repairs it first
    CHECK(bitwise_equal(ck::read_checkpoint(dir), model_tensors(2)));
    CHECK(entries(tmp.path()) == std::vector<std::string>{"ckpt"});
  }

  TEST_CASE("kill -9 in the middle of a directory write leaves the previous checkpoint loadable") {
    TempDir tmp;
    const std::string dir = tmp.file("ckpt");
    const ck::TensorMap old = model_tensors(3);
    ck::CheckpointWriteOptions opts;
    opts.max_shard_bytes = 16 << 20;
    ck::write_checkpoint(dir, old, opts);

    // 256 MB in 16 shards: long enough to be killed part-way.
    ck::TensorMap big;
    for (int i = 0; i < 16; ++i) big[fmt::format("model.layers.{:02d}.w", i)] = at::full({4 << 20}, float(i));

    for (int delay_ms : {0, 2, 10, 40, 150, 500}) {
      CAPTURE(delay_ms);
      const pid_t child = ::fork();
      REQUIRE(child >= 0);
      if (child == 0) {
        try {
          ck::write_checkpoint(dir, big, opts);
        } catch (...) {
          ::_exit(3);
        }
        ::_exit(0);
      }
      // Wait until the child has started writing shards, then a little longer.
      bool started = false;
      for (int i = 0; i < 20000 && !started; ++i) {
        for (const auto& e : fs::directory_iterator(tmp.path())) {
          if (e.path().filename().string().rfind(".ckpt.tmp-", 0) != 0) continue;
          std::error_code ec;
          for (const auto& f : fs::directory_iterator(e.path(), ec)) started |= fs::file_size(f.path(), ec) > 0;
        }
        if (!started) std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      int status = 0;
      const bool finished = ::waitpid(child, &status, WNOHANG) == child;
      if (!finished) {
        ::kill(child, SIGKILL);
        ::waitpid(child, &status, 0);
      }
      CHECK(started);
      INFO("child finished before the kill: ", finished);
      if (finished) continue;  // too fast to interrupt on this machine; nothing to check
      CHECK(WIFSIGNALED(status));
      const ck::CheckpointReader r = ck::CheckpointReader::open(dir);
      CHECK(bitwise_equal(r.tensors(), old));
    }
    // The next write removes what the killed writers left behind and succeeds.
    const ck::TensorMap next = model_tensors(4);
    ck::write_checkpoint(dir, next, opts);
    CHECK(bitwise_equal(ck::read_checkpoint(dir), next));
    CHECK(entries(tmp.path()) == std::vector<std::string>{"ckpt"});
  }

  TEST_CASE("malformed checkpoint directories are clear errors naming the file") {
    TempDir tmp;
    const std::string dir = tmp.file("ckpt");
    ck::CheckpointWriteOptions opts;
    opts.max_shard_bytes = 2048;
    ck::write_checkpoint(dir, model_tensors(1), opts);
    const std::string index_path = dir + "/model.safetensors.index.json";
    const std::string index_text = read_all(index_path);
    auto index = nlohmann::json::parse(index_text);
    auto open_err = [&] { return error_of([&] { ck::CheckpointReader::open(dir); }); };
    auto set_index = [&](const std::string& text) { ck::write_file_atomic(index_path, text); };
    REQUIRE(open_err().empty());

    SUBCASE("index names a missing shard") {
      const std::string shard =
          dir + "/model-00002-of-" + fmt::format("{:05d}", entries(dir).size() - 1) + ".safetensors";
      fs::remove(shard);
      const std::string err = open_err();
      CHECK(contains(err, index_path));
      CHECK(contains(err, fs::path(shard).filename().string()));
      CHECK(contains(err, "missing"));
    }
    SUBCASE("index not JSON") {
      set_index("{\"weight_map\": ");
      CHECK(contains(open_err(), index_path));
      CHECK(contains(open_err(), "not valid JSON"));
    }
    SUBCASE("index without weight_map") {
      set_index("{\"metadata\": {}}");
      CHECK(contains(open_err(), "weight_map"));
    }
    SUBCASE("index puts a tensor in a shard that lacks it") {
      index["weight_map"]["model.norm.weight"] = index["weight_map"]["lm_head.weight"];
      set_index(index.dump());
      const std::string err = open_err();
      CHECK(contains(err, "model.norm.weight"));
    }
    SUBCASE("index does not list a tensor a shard holds") {
      // (mlp.gate shares its shard with input_layernorm at this shard size)
      index["weight_map"].erase("model.layers.0.mlp.gate.weight");
      set_index(index.dump());
      const std::string err = open_err();
      CHECK(contains(err, "model.layers.0.mlp.gate.weight"));
      CHECK(contains(err, "does not assign"));
    }
    SUBCASE("index points outside the checkpoint") {
      index["weight_map"]["model.norm.weight"] = "../x.safetensors";
      set_index(index.dump());
      CHECK(contains(open_err(), "not a file inside the checkpoint"));
    }
    SUBCASE("a corrupt shard names the shard") {
      const std::string shard = ck::CheckpointReader::open(dir).file_of("model.norm.weight");
      fs::resize_file(shard, fs::file_size(shard) - 1);
      const std::string err = open_err();
      CHECK(contains(err, shard));
    }
    SUBCASE("no checkpoint files at all") {
      fs::remove_all(dir);
      fs::create_directory(dir);
      std::ofstream(dir + "/README") << "x";
      const std::string err = open_err();
      CHECK(contains(err, "not a checkpoint"));
      CHECK(contains(err, "README"));
    }
    SUBCASE("no such path") {
      CHECK(contains(error_of([&] { ck::CheckpointReader::open(tmp.file("nope")); }), "nope"));
    }
  }

  TEST_CASE("destinations that cannot be written are errors naming them") {
    TempDir tmp;
    CHECK(contains(error_of([&] { ck::write_checkpoint(tmp.file("no/such/parent/ckpt"), model_tensors(1)); }),
                   "does not exist"));
    tmp.write("file", "x");
    CHECK(contains(error_of([&] { ck::write_checkpoint(tmp.file("file"), model_tensors(1)); }), "not a directory"));
    CHECK(contains(error_of([&] { ck::write_checkpoint(tmp.file("c"), {}); }), "no tensors"));
    ck::CheckpointWriteOptions opts;
    opts.extra_files["../escape"] = "x";
    CHECK(contains(error_of([&] { ck::write_checkpoint(tmp.file("c"), model_tensors(1), opts); }), "../escape"));
  }
}
