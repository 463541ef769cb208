// Unit tests of the tokenizer on small hand-written tokenizer.json files: the BPE merge loop,
// both merges formats, ignore_merges, added tokens, post-processing, decoding, the word cache,
// the invalid-UTF-8 policy and the errors for what rlft does not support.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "policy/tokenizer/byte_level.h"
#include "policy/tokenizer/pre_tokenizer.h"
#include "policy/tokenizer/split_pattern.h"
#include "policy/tokenizer/tokenizer.h"
#include "policy/tokenizer/unicode.h"
#include "tests/support/temp_dir.h"

using nlohmann::json;
using rlft::tokenizer::TokenId;
using rlft::tokenizer::Tokenizer;
namespace bl = rlft::tokenizer::byte_level;

namespace {

/// A byte-level BPE tokenizer.json: the 256 byte symbols (ids 0-255 in byte order), then the
/// merged tokens of `merges` (space-separated pairs of plain ASCII text) in order.
json tiny(const std::vector<std::pair<std::string, std::string>>& merges, bool array_merges = true) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[bl::encode(std::string(1, static_cast<char>(b)))] = b;
  json m = json::array();
  int next = 256;
  for (const auto& [a, b] : merges) {
    const std::string ea = bl::encode(a), eb = bl::encode(b);
    if (!vocab.contains(ea + eb)) vocab[ea + eb] = next++;
    if (array_merges)
      m.push_back(json::array({ea, eb}));
    else
      m.push_back(ea + " " + eb);
  }
  json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = json::array();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}};
  j["post_processor"] = nullptr;
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", m}};
  return j;
}

Tokenizer load(const json& j, rlft::tokenizer::TokenizerOptions o = {}) {
  return Tokenizer::from_json(j.dump(), o);
}

TokenId id(const Tokenizer& t, const std::string& plain) {
  return *t.token_to_id(bl::encode(plain));
}

json added(TokenId id, const std::string& content, bool special, json extra = json::object()) {
  json a = {{"id", id},        {"content", content},     {"single_word", false}, {"lstrip", false},
            {"rstrip", false}, {"normalized", !special}, {"special", special}};
  for (auto it = extra.begin(); it != extra.end(); ++it) a[it.key()] = it.value();
  return a;
}

std::string error_of(const json& j) {
  try {
    load(j);
  } catch (const rlft::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("both merges formats load to the same ids") {
  const std::vector<std::pair<std::string, std::string>> merges{{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}};
  const Tokenizer a = load(tiny(merges, true)), b = load(tiny(merges, false));
  CHECK(a.encode("hello hello") == b.encode("hello hello"));
  CHECK(a.encode("hello") == std::vector<TokenId>{id(a, "hello")});
}

TEST_CASE("the lowest-ranked pair merges first, the leftmost among equals") {
  // "abc": (b,c) ranks before (a,b), so a + bc, not ab + c.
  const Tokenizer t = load(tiny({{"b", "c"}, {"a", "b"}}));
  CHECK(t.encode("abc") == std::vector<TokenId>{'a', id(t, "bc")});
  // "aaa" with (a,a): the leftmost pair merges, then nothing is left to pair.
  const Tokenizer u = load(tiny({{"a", "a"}}));
  CHECK(u.encode("aaa") == std::vector<TokenId>{id(u, "aa"), 'a'});
  CHECK(u.encode("aaaa") == std::vector<TokenId>{id(u, "aa"), id(u, "aa")});
}

TEST_CASE("long words merge the same way as short ones") {
  const Tokenizer t = load(tiny({{"a", "b"}, {"ab", "ab"}, {"abab", "abab"}}));
  std::string word;
  for (int i = 0; i < 300; ++i) word += "ab";  // 600 symbols: the heap path
  const std::vector<TokenId> ids = t.encode(word);
  CHECK(ids.size() == 75);
  CHECK(t.decode(ids) == word);
}

TEST_CASE("ignore_merges takes a word that is in the vocabulary as one token") {
  json j = tiny({{"a", "b"}, {"b", "c"}});
  j["model"]["vocab"][bl::encode("abc")] = 400;  // reachable by no merge
  CHECK(load(j).encode("abc").size() == 2);
  j["model"]["ignore_merges"] = true;
  CHECK(load(j).encode("abc") == std::vector<TokenId>{400});
}

TEST_CASE("added tokens are cut out of the raw text, longest first") {
  json j = tiny({{"a", "b"}});
  // Ids as Hugging Face assigns them: after the 257 model entries.
  j["added_tokens"] = json::array({added(257, "<s>", true), added(258, "<s><s>", true), added(259, "<x", false)});
  const Tokenizer t = load(j);
  CHECK(t.encode("<s><s>ab<s>") == std::vector<TokenId>{258, id(t, "ab"), 257});
  CHECK(t.encode("<xab") == std::vector<TokenId>{259, id(t, "ab")});
  CHECK(t.decode(t.encode("x<s>y"), true) == "xy");
  CHECK(t.decode(t.encode("x<s>y"), false) == "x<s>y");
  CHECK(t.is_special(257));
  CHECK_FALSE(t.is_special(259));
  CHECK(t.vocab_size() == 260);
}

TEST_CASE("added tokens honour single_word, lstrip and rstrip") {
  json j = tiny({});
  j["added_tokens"] = json::array({added(256, "<m>", false, {{"lstrip", true}, {"rstrip", true}}),
                                   added(257, "cat", false, {{"single_word", true}})});
  const Tokenizer t = load(j);
  // lstrip/rstrip: the spaces around <m> belong to it (ids of bytes are their values here).
  CHECK(t.encode("a  <m>  b") == std::vector<TokenId>{'a', 256, 'b'});
  // single_word: "cat" inside a word stays text.
  CHECK(t.encode("cat") == std::vector<TokenId>{257});
  CHECK(t.encode("a cat.") == std::vector<TokenId>{'a', ' ', 257, '.'});
  const std::vector<TokenId> concat = t.encode("concatenate");
  CHECK(std::find(concat.begin(), concat.end(), 257) == concat.end());
}

TEST_CASE("normalized added tokens match the normalised text") {
  json j = tiny({});
  j["normalizer"] = {{"type", "NFKC"}};
  j["added_tokens"] = json::array({added(256, "fi", false)});  // normalized: matches "ﬁ" after NFKC
  const Tokenizer t = load(j);
  CHECK(t.encode("\xEF\xAC\x81") == std::vector<TokenId>{256});
  CHECK(t.encode("fi") == std::vector<TokenId>{256});
}

TEST_CASE("TemplateProcessing adds its tokens only when asked to") {
  json j = tiny({});
  j["added_tokens"] = json::array({added(256, "<bos>", true), added(257, "<eos>", true)});
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", json::array({{{"SpecialToken", {{"id", "<bos>"}, {"type_id", 0}}}},
                                                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                                 {{"SpecialToken", {{"id", "<eos>"}, {"type_id", 0}}}}})},
                         {"pair", json::array()},
                         {"special_tokens",
                          {{"<bos>", {{"id", "<bos>"}, {"ids", {256}}, {"tokens", {"<bos>"}}}},
                           {"<eos>", {{"id", "<eos>"}, {"ids", {257}}, {"tokens", {"<eos>"}}}}}}};
  const Tokenizer t = load(j);
  CHECK(t.encode("x", true) == std::vector<TokenId>{256, 'x', 257});
  CHECK(t.encode("x", false) == std::vector<TokenId>{'x'});
  CHECK(t.decode({256, 'x', 257}, true) == "x");
}

TEST_CASE("special tokens come from tokenizer_config.json") {
  json j = tiny({});
  j["added_tokens"] = json::array({added(256, "<bos>", true), added(257, "<eos>", true)});
  rlft::test::TempDir dir;
  dir.write("tokenizer.json", j.dump());
  dir.write("tokenizer_config.json", json{{"bos_token", {{"content", "<bos>"}, {"__type", "AddedToken"}}},
                                          {"eos_token", "<eos>"},
                                          {"pad_token", nullptr},
                                          {"add_bos_token", true},
                                          {"chat_template", "{{ messages }}"}}
                                         .dump());
  const Tokenizer t = Tokenizer::load(dir.path());
  CHECK(t.special_tokens().bos == 256);
  CHECK(t.special_tokens().eos == 257);
  CHECK_FALSE(t.special_tokens().pad.has_value());
  CHECK(t.special_tokens().add_bos);
  CHECK(t.special_tokens().chat_template == "{{ messages }}");

  dir.write("tokenizer_config.json", json{{"eos_token", "<nope>"}}.dump());
  CHECK_THROWS_WITH_AS(Tokenizer::load(dir.path()), doctest::Contains("eos_token '<nope>' is not a token"),
                       rlft::Error);
}

TEST_CASE("decode turns bytes that form no character into U+FFFD and rejects unknown ids") {
  const Tokenizer t = load(tiny({}));
  const std::vector<TokenId> euro = t.encode("\xE2\x82\xAC");  // €: three byte tokens
  REQUIRE(euro.size() == 3);
  CHECK(t.decode(euro) == "\xE2\x82\xAC");
  CHECK(t.decode({euro[0], euro[1]}) == "\xEF\xBF\xBD");
  CHECK(t.decode({euro[0], 'a'}) ==
        "\xEF\xBF\xBD"
        "a");
  CHECK_THROWS_WITH_AS(t.decode({'a', 9999}), doctest::Contains("cannot decode id 9999 (position 1)"), rlft::Error);
  CHECK_THROWS_AS(t.decode({-1}), rlft::Error);
}

TEST_CASE("invalid UTF-8 is an error naming the byte, or U+FFFD on request") {
  const Tokenizer strict = load(tiny({}));
  CHECK_THROWS_WITH_AS(strict.encode("ok\xC3\x28"), doctest::Contains("not valid UTF-8 at byte 2 (0xC3 0x28)"),
                       rlft::Error);
  for (const char* bad : {"\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82", "\x80", "\xFF"})
    CHECK_THROWS_AS(strict.encode(bad), rlft::Error);
  rlft::tokenizer::TokenizerOptions o;
  o.invalid_utf8 = rlft::tokenizer::InvalidUtf8::kReplace;
  const Tokenizer lenient = load(tiny({}), o);
  CHECK(lenient.encode("a\xC3\x28z") == lenient.encode("a\xEF\xBF\xBD(z"));
}

TEST_CASE("invalid UTF-8 is replaced by maximal subparts (Unicode Table 3-8)") {
  using rlft::tokenizer::unicode::replace_invalid_utf8;
  const std::string r = "\xEF\xBF\xBD";
  CHECK(replace_invalid_utf8("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64") ==
        "a" + r + r + r + "b" + r + "c" + r + r + "d");
  CHECK(replace_invalid_utf8("\xC0\xAF") == r + r);          // overlong: each byte
  CHECK(replace_invalid_utf8("\xED\xA0\x80") == r + r + r);  // surrogate
  CHECK(replace_invalid_utf8("\xF0\x9F\x98") == r);          // truncated at the end
  CHECK(replace_invalid_utf8("\xF0\x9F\x98\x80") == "\xF0\x9F\x98\x80");
  CHECK_FALSE(rlft::tokenizer::unicode::find_invalid_utf8("plain ascii and \xE4\xB8\xAD").has_value());
}

TEST_CASE("the word cache serves repeated words and changes no id") {
  const std::vector<std::pair<std::string, std::string>> merges{{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}};
  const Tokenizer cached = load(tiny(merges));
  rlft::tokenizer::TokenizerOptions o;
  o.cache_words = 0;
  const Tokenizer uncached = load(tiny(merges), o);
  const std::string text = "hello hello hello world world";
  CHECK(cached.encode(text) == uncached.encode(text));
  const auto before = cached.cache_stats();
  cached.encode(text);
  const auto after = cached.cache_stats();
  CHECK(after.hits > before.hits);
  CHECK(after.entries >= 2);
  CHECK(uncached.cache_stats().hits == 0);
  cached.clear_cache();
  CHECK(cached.cache_stats().entries == 0);
}

TEST_CASE("batch encoding equals encoding one by one") {
  const Tokenizer t = load(tiny({{"a", "b"}}));
  std::vector<std::string> texts;
  for (int i = 0; i < 100; ++i) texts.push_back("ab" + std::to_string(i) + " abab");
  const auto batch = t.encode_batch(texts, true, 3);
  for (std::size_t i = 0; i < texts.size(); ++i) CHECK(batch[i] == t.encode(texts[i]));
  CHECK(t.decode_batch(batch) == texts);
}

TEST_CASE("Split behaviours cut the-final--countdown as Hugging Face documents") {
  using rlft::tokenizer::ByteRange;
  using rlft::tokenizer::SplitBehavior;
  const std::string text = "the-final--countdown";
  std::vector<ByteRange> matches;
  rlft::tokenizer::make_literal_pattern("-")->find_matches(text, matches);
  const auto run = [&](SplitBehavior b, bool invert = false) {
    std::vector<ByteRange> out;
    rlft::tokenizer::split_by_matches({0, text.size()}, matches, b, invert, out);
    std::vector<std::string> pieces;
    for (const auto& r : out) pieces.push_back(text.substr(r.begin, r.end - r.begin));
    return pieces;
  };
  using V = std::vector<std::string>;
  CHECK(run(SplitBehavior::kRemoved) == V{"the", "final", "countdown"});
  CHECK(run(SplitBehavior::kIsolated) == V{"the", "-", "final", "-", "-", "countdown"});
  CHECK(run(SplitBehavior::kMergedWithPrevious) == V{"the-", "final-", "-", "countdown"});
  CHECK(run(SplitBehavior::kMergedWithNext) == V{"the", "-final", "-", "-countdown"});
  CHECK(run(SplitBehavior::kContiguous) == V{"the", "-", "final", "--", "countdown"});
  CHECK(run(SplitBehavior::kRemoved, true) == V{"-", "-", "-"});
}

TEST_CASE("normal forms of a few well-known strings") {
  using rlft::tokenizer::unicode::NormalForm;
  const auto n = [](const std::string& s, NormalForm f) {
    std::string out;
    return rlft::tokenizer::unicode::normalize(s, f, out) ? out : s;
  };
  CHECK(n("e\xCC\x81", NormalForm::kNfc) == "\xC3\xA9");  // e + ◌́ → é
  CHECK(n("\xC3\xA9", NormalForm::kNfd) == "e\xCC\x81");
  CHECK(n("\xEF\xAC\x81", NormalForm::kNfkc) == "fi");  // ﬁ
  CHECK(n("\xEF\xAC\x81", NormalForm::kNfc) == "\xEF\xAC\x81");
  CHECK(n("\xE2\x84\xAB", NormalForm::kNfc) == "\xC3\x85");                              // Å (U+212B) → Å
  CHECK(n("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB", NormalForm::kNfc) == "\xED\x95\x9C");  // jamo → 한
  CHECK(n("\xED\x95\x9C", NormalForm::kNfd) == "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB");
  CHECK(n("a\xCC\xA3\xCC\x81", NormalForm::kNfc) == n("a\xCC\x81\xCC\xA3", NormalForm::kNfc));  // reordering
  CHECK(n("plain text", NormalForm::kNfkc) == "plain text");
}

TEST_CASE("a tokenizer.json rlft cannot honour is an error that names the part") {
  json j = tiny({{"a", "b"}});
  SUBCASE("no model") {
    j.erase("model");
    CHECK(error_of(j).find("there is no 'model'") != std::string::npos);
  }
  SUBCASE("an unknown model type") {
    j["model"]["type"] = "WordPiece";
    CHECK(error_of(j).find("model: model type 'WordPiece' is not supported") != std::string::npos);
  }
  SUBCASE("an unknown normalizer inside a Sequence") {
    j["normalizer"] = {{"type", "Sequence"},
                       {"normalizers", json::array({{{"type", "NFC"}}, {{"type", "Lowercase"}}})}};
    CHECK(error_of(j).find("normalizer.normalizers[1]: normalizer type 'Lowercase' is not supported") !=
          std::string::npos);
  }
  SUBCASE("an unknown pre-tokenizer") {
    j["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", json::array({{{"type", "Digits"}}, {{"type", "Metaspace"}}})}};
    CHECK(error_of(j).find("pre_tokenizer.pretokenizers[1]: pre-tokenizer type 'Metaspace' is not supported") !=
          std::string::npos);
  }
  SUBCASE("ByteLevel before another pre-tokenizer") {
    j["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", json::array({{{"type", "ByteLevel"}}, {{"type", "Digits"}}})}};
    CHECK(error_of(j).find("only as the last pre-tokenizer") != std::string::npos);
  }
  SUBCASE("an unknown decoder and post-processor") {
    j["decoder"] = {{"type", "WordPiece"}};
    CHECK(error_of(j).find("decoder: decoder type 'WordPiece' is not supported") != std::string::npos);
    j["decoder"] = nullptr;
    j["post_processor"] = {{"type", "Frobnicate"}};
    CHECK(error_of(j).find("post_processor: post-processor type 'Frobnicate' is not supported") != std::string::npos);
  }
  SUBCASE("a merge naming an unknown token") {
    j["model"]["merges"].push_back(json::array({"a", "zz"}));
    CHECK(error_of(j).find("token 'zz' is not in the vocabulary") != std::string::npos);
  }
  SUBCASE("a merge whose result is not in the vocabulary") {
    j["model"]["merges"].push_back(json::array({"x", "y"}));
    CHECK(error_of(j).find("the merged token 'xy' is not in the vocabulary") != std::string::npos);
  }
  SUBCASE("a malformed merge string") {
    j["model"]["merges"] = json::array({"a b c"});
    CHECK(error_of(j).find("model.merges[0] = \"a b c\"") != std::string::npos);
  }
  SUBCASE("BPE dropout") {
    j["model"]["dropout"] = 0.1;
    CHECK(error_of(j).find("model.dropout = 0.1") != std::string::npos);
  }
  SUBCASE("an unknown Split behaviour") {
    j["pre_tokenizer"] = {
        {"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Sideways"}, {"invert", false}};
    CHECK(error_of(j).find("pre_tokenizer.behavior: behavior 'Sideways' is unknown") != std::string::npos);
  }
  SUBCASE("a regex that does not compile") {
    j["pre_tokenizer"] = {
        {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}, {"invert", false}};
    CHECK(error_of(j).find("Split regex '(unclosed' does not compile") != std::string::npos);
  }
  SUBCASE("another version, and text that is not JSON") {
    j["version"] = "2.0";
    CHECK(error_of(j).find("only tokenizer.json version \"1.0\"") != std::string::npos);
    CHECK_THROWS_WITH_AS(Tokenizer::from_json("{not json"), doctest::Contains("not valid JSON"), rlft::Error);
  }
}

TEST_CASE("a missing tokenizer file is an error naming it") {
  CHECK_THROWS_WITH_AS(Tokenizer::load("/nonexistent/dir/tokenizer.json"),
                       doctest::Contains("/nonexistent/dir/tokenizer.json"), rlft::Error);
}

TEST_CASE("the hand-written matchers find what PCRE2 finds for the same regexes") {
  // Same matches on text of characters that Unicode 14 (PCRE2 10.42's tables) already had.
  const std::vector<std::string> regexes{
      rlft::tokenizer::kQwen2Regex,
      rlft::tokenizer::kGpt2Regex,
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
      R"(\p{N}{1,3})",
      "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
      "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
  };
  static const char* const palette[] = {" ",
                                        "  ",
                                        "\t",
                                        "\n",
                                        "\r",
                                        "a",
                                        "Z",
                                        "\xC3\xA9",
                                        "\xCC\x81",
                                        "'",
                                        "s",
                                        "S",
                                        "t",
                                        "re",
                                        "LL",
                                        "d",
                                        "\xC5\xBF",
                                        "1",
                                        "23",
                                        "\xD9\xA3",
                                        "\xC2\xBD",
                                        "\xE4\xB8\xAD",
                                        "\xE3\x81\xB2",
                                        "\xE3\x82\xAB",
                                        "\xED\x95\x9C",
                                        "\xF0\x9F\x98\x80",
                                        "\xE2\x80\x8D",
                                        ".",
                                        ",",
                                        "!",
                                        "-",
                                        "_",
                                        "(",
                                        "$",
                                        "\\",
                                        "\xC2\xA0",
                                        "\xE3\x80\x80",
                                        "\x07",
                                        "\xEF\xBB\xBF"};
  std::mt19937 rng(1);
  std::vector<std::string> texts;
  for (int i = 0; i < 2000; ++i) {
    std::string s;
    for (int k = static_cast<int>(rng() % 30); k >= 0; --k) s += palette[rng() % (sizeof palette / sizeof palette[0])];
    texts.push_back(s);
  }
  for (const std::string& r : regexes) {
    const auto hand = rlft::tokenizer::make_regex_pattern(r);
    const auto pcre = rlft::tokenizer::make_pcre2_pattern(r);
    CHECK(hand->engine().rfind("pcre2", 0) != 0);
    int differ = 0;
    for (const std::string& t : texts) {
      std::vector<rlft::tokenizer::ByteRange> a, b;
      hand->find_matches(t, a);
      pcre->find_matches(t, b);
      const bool same = a.size() == b.size() &&
                        std::equal(a.begin(), a.end(), b.begin(),
                                   [](const auto& x, const auto& y) { return x.begin == y.begin && x.end == y.end; });
      if (!same && ++differ <= 3) FAIL_CHECK(hand->engine() << " and PCRE2 differ on " << json(t).dump());
    }
    CHECK(differ == 0);
  }
}
