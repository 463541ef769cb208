// The Tokenizer: loading tokenizer.json and the encode / decode pipeline (Hugging Face
// tokenizers tokenizer/{mod,serialization,added_vocabulary}.rs, re-expressed).
#include "policy/tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/log.h"
#include "policy/tokenizer/chat_template.h"
#include "policy/tokenizer/json_util.h"
#include "policy/tokenizer/normalizer.h"
#include "policy/tokenizer/pre_tokenizer.h"
#include "policy/tokenizer/processors.h"
#include "policy/tokenizer/unicode.h"

namespace rlft::tokenizer {

namespace fs = std::filesystem;

struct Tokenizer::Impl {
  std::string name;
  TokenizerOptions options;
  std::unique_ptr<Normalizer> normalizer;
  std::string normalizer_description = "none";
  PreTokenizer pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  PostProcessor post;
  Decoder decoder;
  std::vector<AddedToken> added;  ///< in Hugging Face's order: specials, then the others
  std::unordered_map<std::string, TokenId> added_by_content;
  std::unordered_map<TokenId, std::size_t> added_by_id;  ///< id → index into `added`
  std::unordered_set<std::string> special_contents;
  AddedTokenMatcher raw_matcher;         ///< normalized = false
  AddedTokenMatcher normalized_matcher;  ///< normalized = true, patterns normalised
  SpecialTokens specials;
  TokenId id_end = 0;

  void encode_piece(std::string_view piece, std::vector<TokenId>& ids, Words& words,
                    std::vector<TokenId>& scratch) const {
    pre_tokenizer.run(piece, words);
    for (const ByteRange& r : words.ranges)
      model->encode_word(words.text.substr(r.begin, r.end - r.begin), ids, scratch);
  }
};

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RLFT_CHECK(in, "cannot open '{}'", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& path, const TokenizerOptions& options) {
  fs::path file = path;
  if (fs::is_directory(file)) file /= "tokenizer.json";
  RLFT_CHECK(fs::exists(file), "tokenizer '{}' not found", file.string());
  Tokenizer t = from_json(read_file(file.string()), options, file.string());
  const fs::path cfg_path = file.parent_path() / "tokenizer_config.json";
  if (!fs::exists(cfg_path)) return t;
  const std::string cfg_name = cfg_path.string();
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(read_file(cfg_name));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", cfg_name, e.what()));
  }
  RLFT_CHECK(cfg.is_object(), "{}: expected a JSON object", cfg_name);
  SpecialTokens& s = t.impl_->specials;
  const auto resolve = [&](const char* key, std::optional<std::string>& name, std::optional<TokenId>& id) {
    name = config_special_token(cfg, key, cfg_name);
    if (!name) return;
    id = t.token_to_id(*name);
    RLFT_CHECK(id.has_value(), "{}: {} '{}' is not a token of {}", cfg_name, key, *name, file.string());
  };
  resolve("bos_token", s.bos_token, s.bos);
  resolve("eos_token", s.eos_token, s.eos);
  resolve("pad_token", s.pad_token, s.pad);
  resolve("unk_token", s.unk_token, s.unk);
  s.add_bos = json_bool(cfg, "add_bos_token", cfg_name, false);
  s.add_eos = json_bool(cfg, "add_eos_token", cfg_name, false);
  s.chat_template = config_chat_template(cfg);
  return t;
}

Tokenizer Tokenizer::from_json(const std::string& json_text, const TokenizerOptions& options, const std::string& name) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", name, e.what()));
  }
  auto impl = std::make_unique<Impl>();
  impl->name = name;
  impl->options = options;
  try {
    RLFT_CHECK(j.is_object(), "expected a JSON object");
    if (auto v = j.find("version"); v != j.end() && !v->is_null())
      RLFT_CHECK(v->is_string() && v->get<std::string>() == "1.0",
                 "version {}: only tokenizer.json version \"1.0\" is known", v->dump());
    for (const char* key : {"truncation", "padding"})
      if (auto v = j.find(key); v != j.end() && !v->is_null())
        log::warn("{}: '{}' is set; rlft does not apply it (it never truncates or pads while encoding)", name, key);
    RLFT_CHECK(j.contains("model") && !j["model"].is_null(), "there is no 'model'");

    const nlohmann::json null_json;
    const auto part = [&](const char* key) -> const nlohmann::json& { return j.contains(key) ? j[key] : null_json; };
    impl->normalizer = Normalizer::from_json(part("normalizer"), "normalizer");
    if (impl->normalizer) impl->normalizer_description = part("normalizer").value("type", "?");
    impl->pre_tokenizer = PreTokenizer::from_json(part("pre_tokenizer"), "pre_tokenizer");
    impl->model = BpeModel::from_json(j["model"], "model", impl->pre_tokenizer.byte_level(), options.cache_words);
    impl->post = PostProcessor::from_json(part("post_processor"), "post_processor");
    impl->decoder = Decoder::from_json(part("decoder"), "decoder");

    // Added tokens, added one by one as Hugging Face's deserializer does: a token already in
    // the vocabulary keeps its id, a new one gets the next free id; both are warned about when
    // they differ from the id the file states.
    const nlohmann::json& list = part("added_tokens");
    RLFT_CHECK(list.is_null() || list.is_array(), "added_tokens: expected a list");
    std::vector<AddedToken> specials, classic;
    TokenId max_added = -1;
    const auto vocab_entries = static_cast<TokenId>(impl->model->vocab_entries());
    for (std::size_t i = 0; list.is_array() && i < list.size(); ++i) {
      const std::string where = fmt::format("added_tokens[{}]", i);
      const nlohmann::json& e = list[i];
      AddedToken t;
      t.content = json_string(e, "content", where);
      t.single_word = json_bool(e, "single_word", where, false);
      t.lstrip = json_bool(e, "lstrip", where, false);
      t.rstrip = json_bool(e, "rstrip", where, false);
      t.special = json_bool(e, "special", where, false);
      t.normalized = json_bool(e, "normalized", where, !t.special);
      const auto stated = e.contains("id") && e["id"].is_number_integer()
                              ? std::optional<TokenId>(e["id"].get<TokenId>())
                              : std::nullopt;
      if (t.content.empty()) continue;
      TokenId id;
      if (auto it = impl->added_by_content.find(t.content); it != impl->added_by_content.end()) {
        id = it->second;
      } else if (auto mid = impl->model->token_to_id(t.content)) {
        id = *mid;
      } else {
        id = max_added < 0 ? vocab_entries
                           : (max_added >= vocab_entries || vocab_entries == 0 ? max_added + 1 : vocab_entries);
      }
      if (stated && *stated != id)
        log::warn("{}: added token '{}' is stated to have id {} but gets id {} (as in Hugging Face tokenizers)", name,
                  t.content, *stated, id);
      t.id = id;
      max_added = std::max(max_added, id);
      impl->added_by_content[t.content] = id;
      if (t.special) impl->special_contents.insert(t.content);
      (t.special ? specials : classic).push_back(t);
    }
    // One entry per id (a later definition replaces an earlier one), specials first.
    std::unordered_map<TokenId, AddedToken> by_id;
    for (const auto* group : {&specials, &classic})
      for (const AddedToken& t : *group) by_id[t.id] = t;
    std::unordered_set<TokenId> placed;
    for (const auto* group : {&specials, &classic})
      for (const AddedToken& t : *group)
        if (placed.insert(t.id).second) impl->added.push_back(by_id[t.id]);
    for (std::size_t k = 0; k < impl->added.size(); ++k) impl->added_by_id[impl->added[k].id] = k;

    std::vector<std::string> raw_patterns, norm_patterns;
    std::vector<const AddedToken*> raw_tokens, norm_tokens;
    for (const AddedToken& t : impl->added) {
      if (t.normalized) {
        std::string storage;
        norm_patterns.emplace_back(normalize_piece(impl->normalizer.get(), t.content, storage));
        norm_tokens.push_back(&t);
      } else {
        raw_patterns.push_back(t.content);
        raw_tokens.push_back(&t);
      }
    }
    impl->raw_matcher = AddedTokenMatcher(raw_patterns, raw_tokens);
    impl->normalized_matcher = AddedTokenMatcher(norm_patterns, norm_tokens);
    impl->id_end = impl->model->id_end();
    for (const AddedToken& t : impl->added) impl->id_end = std::max(impl->id_end, t.id + 1);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", name, e.what()));
  }
  return Tokenizer(std::move(impl));
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& m = *impl_;
  std::string repaired;
  if (auto bad = unicode::find_invalid_utf8(text)) {
    if (m.options.invalid_utf8 == InvalidUtf8::kError) {
      std::string bytes;
      for (std::size_t k = *bad; k < std::min(text.size(), *bad + 4); ++k)
        bytes += fmt::format("{}0x{:02X}", bytes.empty() ? "" : " ", static_cast<uint8_t>(text[k]));
      throw Error(
          fmt::format("tokenizer: the text is not valid UTF-8 at byte {} ({}); to substitute U+FFFD instead, "
                      "set TokenizerOptions::invalid_utf8 to kReplace (--invalid-utf8 replace)",
                      *bad, bytes));
    }
    repaired = unicode::replace_invalid_utf8(text);
    text = repaired;
  }
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + m.post.prefix.size() + m.post.suffix.size() + 4);
  if (add_special_tokens) ids.insert(ids.end(), m.post.prefix.begin(), m.post.prefix.end());
  Words words;
  std::string normalized_storage;
  std::vector<TokenId> scratch;
  m.raw_matcher.split(text, [&](std::size_t b, std::size_t e, const AddedToken* tok) {
    if (tok) return ids.push_back(tok->id);
    const std::string_view piece = normalize_piece(m.normalizer.get(), text.substr(b, e - b), normalized_storage);
    if (piece.empty()) return;
    m.normalized_matcher.split(piece, [&](std::size_t nb, std::size_t ne, const AddedToken* ntok) {
      if (ntok) return ids.push_back(ntok->id);
      m.encode_piece(piece.substr(nb, ne - nb), ids, words, scratch);
    });
  });
  if (add_special_tokens) ids.insert(ids.end(), m.post.suffix.begin(), m.post.suffix.end());
  return ids;
}

std::vector<std::vector<TokenId>> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                                          bool add_special_tokens, int n_threads) const {
  std::vector<std::vector<TokenId>> out(texts.size());
  std::size_t workers =
      n_threads > 0 ? static_cast<std::size_t>(n_threads) : std::max(1u, std::thread::hardware_concurrency());
  workers = std::min(workers, texts.size());
  if (workers <= 1) {
    for (std::size_t i = 0; i < texts.size(); ++i) out[i] = encode(texts[i], add_special_tokens);
    return out;
  }
  std::atomic<std::size_t> next{0};
  std::vector<std::exception_ptr> errors(workers);
  std::vector<std::thread> pool;
  for (std::size_t w = 0; w < workers; ++w) {
    pool.emplace_back([&, w] {
      try {
        for (std::size_t i; (i = next.fetch_add(1)) < texts.size();) out[i] = encode(texts[i], add_special_tokens);
      } catch (...) {
        errors[w] = std::current_exception();
        next = texts.size();
      }
    });
  }
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::vector<const std::string*> tokens;
  tokens.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const TokenId id = ids[i];
    if (auto it = m.added_by_id.find(id); it != m.added_by_id.end()) {
      const AddedToken& t = m.added[it->second];
      if (skip_special_tokens && m.special_contents.count(t.content)) continue;
      tokens.push_back(&t.content);
      continue;
    }
    const std::string* token = m.model->id_to_token(id);
    RLFT_CHECK(token, "tokenizer: cannot decode id {} (position {}): not in the vocabulary (ids run from 0 to {})", id,
               i, m.id_end - 1);
    if (skip_special_tokens && m.special_contents.count(*token)) continue;
    tokens.push_back(token);
  }
  return m.decoder.decode(tokens);
}

std::vector<std::string> Tokenizer::decode_batch(const std::vector<std::vector<TokenId>>& batch,
                                                 bool skip_special_tokens) const {
  std::vector<std::string> out;
  out.reserve(batch.size());
  for (const auto& ids : batch) out.push_back(decode(ids, skip_special_tokens));
  return out;
}

std::optional<TokenId> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = impl_->added_by_content.find(std::string(token)); it != impl_->added_by_content.end())
    return it->second;
  return impl_->model->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(TokenId id) const {
  if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) return impl_->added[it->second].content;
  if (const std::string* t = impl_->model->id_to_token(id)) return *t;
  return std::nullopt;
}

TokenId Tokenizer::vocab_size() const {
  return impl_->id_end;
}

bool Tokenizer::is_special(TokenId id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

const SpecialTokens& Tokenizer::special_tokens() const {
  return impl_->specials;
}
const std::vector<AddedToken>& Tokenizer::added_tokens() const {
  return impl_->added;
}
const BpeModel& Tokenizer::model() const {
  return *impl_->model;
}
CacheStats Tokenizer::cache_stats() const {
  return impl_->model->cache_stats();
}
void Tokenizer::clear_cache() const {
  impl_->model->clear_cache();
}

std::string Tokenizer::summary() const {
  const Impl& m = *impl_;
  std::string pre;
  for (const PreTokenizerStep& s : m.pre_tokenizer.steps()) {
    if (!pre.empty()) pre += ", ";
    switch (s.kind) {
      case PreTokenizerStep::Kind::kSplit:
        pre += fmt::format("Split({})", s.pattern->engine());
        break;
      case PreTokenizerStep::Kind::kDigits:
        pre += s.individual_digits ? "Digits(individual)" : "Digits";
        break;
      case PreTokenizerStep::Kind::kByteLevel:
        pre += fmt::format("ByteLevel(add_prefix_space={}, use_regex={})", s.add_prefix_space, s.use_regex);
        break;
    }
  }
  std::size_t n_special = 0;
  for (const AddedToken& t : m.added) n_special += t.special;
  const SpecialTokens& s = m.specials;
  const auto tok = [](const std::optional<std::string>& name, const std::optional<TokenId>& id) {
    return name ? fmt::format("{} ({})", *name, *id) : std::string("-");
  };
  return fmt::format(
      "tokenizer      {}\nvocabulary     {} ids ({} model entries, {} merges, {} added tokens of which {} special)\n"
      "normalizer     {}\npre_tokenizer  {}\nmodel          BPE{}{}\npost_processor {}\ndecoder        {}\n"
      "bos {}  eos {}  pad {}  unk {}\n",
      m.name, m.id_end, m.model->vocab_entries(), m.model->merge_count(), m.added.size(), n_special,
      m.normalizer_description, pre.empty() ? "none" : pre, m.pre_tokenizer.byte_level() ? " (byte-level)" : "",
      m.model->options().ignore_merges ? ", ignore_merges" : "", m.post.description, m.decoder.description,
      tok(s.bos_token, s.bos), tok(s.eos_token, s.eos), tok(s.pad_token, s.pad), tok(s.unk_token, s.unk));
}

}  // namespace rlft::tokenizer
