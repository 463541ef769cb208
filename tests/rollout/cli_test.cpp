// `rlft generate` and `rlft bench rollout` as a user runs them (real child processes).
#include <nlohmann/json.hpp>

#include <sstream>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

using rlft::test::run_rlft;
using rlft::test::TempDir;

namespace {

std::vector<nlohmann::json> jsonl(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

// A tiny random model directory (no tokenizer.json).
std::string tiny_model_dir(const TempDir& dir) {
  const auto r = run_rlft({"model", "init", std::string(RLFT_SOURCE_DIR) + "/configs/model/tiny-qwen3-moe.yaml", "-o",
                           dir.file("m"), "--seed", "3"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  return dir.file("m");
}

}  // namespace

TEST_CASE("rlft generate samples completions from token ids as JSONL, reproducibly") {
  TempDir dir;
  const auto model = tiny_model_dir(dir);
  const std::vector<std::string> args{
      "generate",         model, "--ids",      "3,4,5",  "--ids", "7,8",           "-n", "2",
      "--max-new-tokens", "4",   "--logprobs", "--seed", "1",     "--temperature", "0.9"};
  const auto a = run_rlft(args);
  REQUIRE_MESSAGE(a.exit_code == 0, a.err);
  const auto rows = jsonl(a.out);
  REQUIRE(rows.size() == 4);
  for (const auto& r : rows) {
    CHECK(r["token_ids"].size() >= 1);
    CHECK(r["token_ids"].size() <= 4);
    CHECK(r["logprobs"].size() == r["token_ids"].size());
    const auto f = r["finish_reason"].get<std::string>();
    CHECK((f == "stop" || f == "length"));
  }
  CHECK(rows[2]["prompt"] == "7,8");
  CHECK(run_rlft(args).out == a.out);  // same seed, same output

  const auto beams = run_rlft({"generate", model, "--ids", "3,4,5", "--num-beams", "3", "-n", "2", "--max-new-tokens",
                               "3", "-o", dir.file("b.jsonl")});
  REQUIRE_MESSAGE(beams.exit_code == 0, beams.err);
}

TEST_CASE("rlft generate rejects bad input with exit code 2, naming the option") {
  TempDir dir;
  const auto model = tiny_model_dir(dir);
  auto err = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"generate", model};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_rlft(args);
    CHECK(r.exit_code == 2);
    return r.err;
  };
  CHECK(err({}).find("empty prompt list") != std::string::npos);
  CHECK(err({"--ids", "3", "--top-p", "1.5"}).find("top_p = 1.5") != std::string::npos);
  CHECK(err({"--ids", "3", "--temperature", "-1"}).find("temperature = -1") != std::string::npos);
  CHECK(err({"--ids", "3", "--num-beams", "0"}).find("--num-beams = 0") != std::string::npos);
  CHECK(err({"--ids", "3", "--stop-id", "100000"}).find("unknown stop token 100000") != std::string::npos);
  CHECK(err({"--prompt", "hello"}).find("no tokenizer.json") != std::string::npos);
  const auto no_mtp = err({"--ids", "3", "--speculative", "2"});
  CHECK(no_mtp.find("--speculative 2") != std::string::npos);
  CHECK(no_mtp.find("no MTP module") != std::string::npos);
  CHECK(err({"--ids", "3", "--speculative", "16"}).find("--speculative 16: must be in 0..15") != std::string::npos);
  const auto long_ids = [] {
    std::string s = "3";
    for (int i = 0; i < 300; ++i) s += ",3";
    return s;
  }();
  const auto r = run_rlft({"generate", model, "--ids", long_ids});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("longer than the context") != std::string::npos);
}

TEST_CASE("rlft bench rollout --json prints the figures the issue names") {
  TempDir dir;
  const auto model = tiny_model_dir(dir);
  const auto r = run_rlft({"bench", "rollout", "--json", "--model", model, "--prompt-tokens", "6", "--new-tokens", "3",
                           "--naive-steps", "1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["gemm_gflops"].get<double>() > 0);
  REQUIRE(j["cases"].size() == 4);
  std::vector<int64_t> seqs;
  for (const auto& c : j["cases"]) {
    for (const char* key : {"name", "sequences", "prefill_tokens_per_s", "decode_tokens_per_s", "decode_gflops"})
      CHECK_MESSAGE(c.contains(key), key);
    CHECK(c["decode_tokens_per_s"].get<double>() > 0);
    seqs.push_back(c["sequences"].get<int64_t>());
  }
  const std::vector<int64_t> want{1, 8, 32, 128};
  CHECK(seqs == want);
  // Continuous batching against waves on the same requests.
  REQUIRE(j.contains("continuous_batching"));
  for (const char* k : {"continuous", "waves"}) {
    CHECK(j["continuous_batching"][k]["seconds"].get<double>() > 0);
    CHECK(j["continuous_batching"][k]["new_tokens"].get<int64_t>() > 0);
  }
}
