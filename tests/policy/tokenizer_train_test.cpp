// The BPE trainer: the tokenizer.json it writes loads in Hugging Face `tokenizers` (the Node
// binding in tests/js) and encodes and decodes there exactly as in rlft.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "policy/tokenizer/tokenizer.h"
#include "policy/tokenizer/trainer.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using rlft::tokenizer::BpeTrainer;
using rlft::tokenizer::BpeTrainerOptions;
using rlft::tokenizer::TokenId;
using rlft::tokenizer::Tokenizer;

namespace {

const std::string kTrainJsDir = std::string(RLFT_SOURCE_DIR) + "/tests/js";
const std::string kTrainCorpusDir = std::string(RLFT_SOURCE_DIR) + "/tests/golden/tokenizer";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> corpus_files() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(kTrainCorpusDir))
    if (e.path().extension() == ".txt") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

/// Texts to compare on: each corpus line, each file, and made-up mixtures of corpus pieces.
std::vector<std::string> check_texts() {
  std::vector<std::string> texts;
  std::string all;
  for (const auto& f : corpus_files()) {
    const std::string t = read_text(f);
    texts.push_back(t);
    all += t;
    std::istringstream in(t);
    for (std::string line; std::getline(in, line);) texts.push_back(line + "\n");
  }
  std::mt19937 rng(3);
  for (int i = 0; i < 300; ++i) {
    const std::size_t b = rng() % all.size(), n = rng() % 200;
    std::string s = all.substr(b, n);
    while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) s.pop_back();  // whole characters
    while (!s.empty() && (static_cast<unsigned char>(s.front()) & 0xC0) == 0x80) s.erase(0, 1);
    if (!s.empty() && static_cast<unsigned char>(s.back()) >= 0xC0) s.pop_back();
    texts.push_back(s + (i % 3 == 0 ? "<|endoftext|>" : "") + "<|im_start|>x");
  }
  return texts;
}

std::string train(const BpeTrainerOptions& o) {
  BpeTrainer t(o);
  for (const auto& f : corpus_files()) t.feed(read_text(f), f);
  return t.train();
}

}  // namespace

TEST_CASE("a trained tokenizer.json encodes in Hugging Face tokenizers exactly as in rlft") {
  REQUIRE_MESSAGE(fs::exists(kTrainJsDir + "/node_modules/@anush008/tokenizers/package.json"),
                  "the reference tokenizers are not installed in tests/js/node_modules: run scripts/setup.sh --test");
  BpeTrainerOptions o;
  o.vocab_size = 1500;
  o.min_frequency = 2;
  o.special_tokens = {"<|endoftext|>", "<|im_start|>"};
  const std::string json = train(o);
  rlft::test::TempDir dir;
  const std::string path = dir.write("tokenizer.json", json);
  const Tokenizer tok = Tokenizer::load(path);
  CHECK(tok.vocab_size() <= 1500);
  CHECK(tok.token_to_id("<|endoftext|>") == 0);
  CHECK(tok.token_to_id("<|im_start|>") == 1);
  CHECK(tok.model().merge_count() > 500);

  const std::vector<std::string> texts = check_texts();
  nlohmann::json cases;
  cases["texts"] = texts;
  const std::string cases_path = dir.write("cases.json", cases.dump());
  const auto r = rlft::test::run_process(
      {"node", kTrainJsDir + "/golden.js", "--tokenizer", path, "--cases", cases_path, "--out", dir.file("out.json")});
  REQUIRE_MESSAGE(r.exit_code == 0, "tests/js/golden.js failed: " << r.err);
  const nlohmann::json g = nlohmann::json::parse(read_text(dir.file("out.json")));
  int mismatches = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const std::vector<TokenId> ids = tok.encode(texts[i]);
    if (ids != g["ids"][i].get<std::vector<TokenId>>() || tok.decode(ids) != g["decoded"][i].get<std::string>()) {
      if (++mismatches <= 5) FAIL_CHECK("case " << i << " " << nlohmann::json(texts[i]).dump() << " differs");
    }
  }
  MESSAGE("trained tokenizer: " << texts.size() << " cases, " << mismatches << " differ");
  CHECK(mismatches == 0);
  // Training text comes back out of the tokenizer unchanged (when it is NFC already).
  const std::string english = read_text(kTrainCorpusDir + "/english.txt");
  CHECK(tok.decode(tok.encode(english)) == english);
}

TEST_CASE("training is deterministic and the merges compress the training text") {
  BpeTrainerOptions o;
  o.vocab_size = 600;
  const std::string a = train(o), b = train(o);
  CHECK(a == b);
  const Tokenizer small = Tokenizer::from_json(a);
  o.vocab_size = 256;  // bytes only: no merges
  const Tokenizer bytes = Tokenizer::from_json(train(o));
  CHECK(bytes.model().merge_count() == 0);
  const std::string text = read_text(kTrainCorpusDir + "/english.txt");
  CHECK(small.encode(text).size() < bytes.encode(text).size() * 3 / 4);
  CHECK(bytes.encode(text).size() == text.size());  // one id per byte
}

TEST_CASE("min_frequency stops merging rare pairs") {
  BpeTrainerOptions o;
  o.vocab_size = 100000;
  o.min_frequency = 1000000;
  const Tokenizer t = Tokenizer::from_json(train(o));
  CHECK(t.model().merge_count() == 0);
  CHECK(t.vocab_size() == 256);
}

TEST_CASE("trainer options are checked and name the option") {
  BpeTrainerOptions o;
  o.vocab_size = 100;
  CHECK_THROWS_WITH_AS(BpeTrainer{o}, doctest::Contains("--vocab-size 100: must be at least 256"), rlft::UsageError);
  o.vocab_size = 1000;
  o.special_tokens = {"<a>", "<a>"};
  CHECK_THROWS_WITH_AS(BpeTrainer{o}, doctest::Contains("--special '<a>' is given twice"), rlft::UsageError);
  o.special_tokens = {"!"};
  CHECK_THROWS_WITH_AS(BpeTrainer{o}, doctest::Contains("byte-level symbol of a single byte"), rlft::UsageError);
  o.special_tokens = {};
  o.min_frequency = 0;
  CHECK_THROWS_WITH_AS(BpeTrainer{o}, doctest::Contains("--min-frequency 0"), rlft::UsageError);
  o.min_frequency = 2;
  BpeTrainer t(o);
  CHECK_THROWS_WITH_AS(t.feed("ok\xFF", "bad.txt"), doctest::Contains("bad.txt: not valid UTF-8 at byte 2"),
                       rlft::Error);
}
