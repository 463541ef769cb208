// Post-processors and decoders (Hugging Face tokenizers processors/{template,roberta,bert,
// sequence}.rs and decoders/byte_level via pre_tokenizers/byte_level.rs).
#include "policy/tokenizer/processors.h"

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "policy/tokenizer/byte_level.h"
#include "policy/tokenizer/json_util.h"
#include "policy/tokenizer/unicode.h"

namespace rlft::tokenizer {
namespace {

TokenId pair_id(const nlohmann::json& j, const char* key, const std::string& where) {
  const nlohmann::json& v = json_member(j, key, where);
  RLFT_CHECK(v.is_array() && v.size() == 2 && v[1].is_number_integer(), "{}.{}: expected [\"token\", id]", where, key);
  return v[1].get<TokenId>();
}

/// TemplateProcessing's single template: special tokens before and after the one sequence $A.
void template_single(const nlohmann::json& j, const std::string& where, PostProcessor& out) {
  const nlohmann::json& single = json_member(j, "single", where);
  RLFT_CHECK(single.is_array(), "{}.single: expected a list", where);
  const nlohmann::json& specials = j.contains("special_tokens") ? j["special_tokens"] : nlohmann::json::object();
  std::vector<TokenId> before, after;
  int n_sequences = 0;
  for (std::size_t i = 0; i < single.size(); ++i) {
    const nlohmann::json& piece = single[i];
    const std::string w = fmt::format("{}.single[{}]", where, i);
    if (piece.contains("Sequence")) {
      const std::string id = json_string(piece["Sequence"], "id", w + ".Sequence");
      RLFT_CHECK(id == "A", "{}: the single template refers to sequence '{}'; only A exists", w, id);
      ++n_sequences;
      continue;
    }
    RLFT_CHECK(piece.contains("SpecialToken"), "{}: expected {{\"SpecialToken\": …}} or {{\"Sequence\": …}}", w);
    const std::string name = json_string(piece["SpecialToken"], "id", w + ".SpecialToken");
    RLFT_CHECK(specials.contains(name), "{}: special token '{}' is not in {}.special_tokens", w, name, where);
    const nlohmann::json& ids = json_member(specials[name], "ids", fmt::format("{}.special_tokens['{}']", where, name));
    RLFT_CHECK(ids.is_array(), "{}.special_tokens['{}'].ids: expected a list of ids", where, name);
    for (const auto& id : ids) (n_sequences == 0 ? before : after).push_back(id.get<TokenId>());
  }
  RLFT_CHECK(n_sequences == 1, "{}.single: expected the sequence $A exactly once, found {}", where, n_sequences);
  out.prefix.insert(out.prefix.begin(), before.begin(), before.end());
  out.suffix.insert(out.suffix.end(), after.begin(), after.end());
}

void parse_post(const nlohmann::json& j, const std::string& where, PostProcessor& out,
                std::vector<std::string>& names) {
  const std::string type = json_type(j, where, "post-processor");
  names.push_back(type);
  if (type == "ByteLevel") return;
  if (type == "TemplateProcessing") return template_single(j, where, out);
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    out.prefix.insert(out.prefix.begin(), pair_id(j, "cls", where));
    out.suffix.push_back(pair_id(j, "sep", where));
    return;
  }
  if (type == "Sequence") {
    names.pop_back();
    const nlohmann::json& list = json_member(j, "processors", where);
    RLFT_CHECK(list.is_array(), "{}.processors: expected a list", where);
    for (std::size_t i = 0; i < list.size(); ++i)
      parse_post(list[i], fmt::format("{}.processors[{}]", where, i), out, names);
    return;
  }
  throw Error(
      fmt::format("{}: post-processor type '{}' is not supported by rlft (supported: ByteLevel, "
                  "TemplateProcessing, RobertaProcessing, BertProcessing, Sequence)",
                  where, type));
}

void parse_decoder(const nlohmann::json& j, const std::string& where, Decoder& out) {
  const std::string type = json_type(j, where, "decoder");
  if (type == "ByteLevel") {
    RLFT_CHECK(!out.byte_level, "{}: two ByteLevel decoders in a row are not supported", where);
    out.byte_level = true;
    return;
  }
  if (type == "Sequence") {
    const nlohmann::json& list = json_member(j, "decoders", where);
    RLFT_CHECK(list.is_array(), "{}.decoders: expected a list", where);
    for (std::size_t i = 0; i < list.size(); ++i) parse_decoder(list[i], fmt::format("{}.decoders[{}]", where, i), out);
    return;
  }
  throw Error(
      fmt::format("{}: decoder type '{}' is not supported by rlft (supported: ByteLevel, Sequence of "
                  "ByteLevel)",
                  where, type));
}

}  // namespace

PostProcessor PostProcessor::from_json(const nlohmann::json& j, const std::string& where) {
  PostProcessor p;
  if (j.is_null()) return p;
  std::vector<std::string> names;
  parse_post(j, where, p, names);
  p.description = names.empty() ? "Sequence[]" : fmt::format("{}", fmt::join(names, " + "));
  return p;
}

Decoder Decoder::from_json(const nlohmann::json& j, const std::string& where) {
  Decoder d;
  if (j.is_null()) return d;
  parse_decoder(j, where, d);
  d.description = d.byte_level ? "ByteLevel" : "none";
  return d;
}

std::string Decoder::decode(const std::vector<const std::string*>& tokens) const {
  if (!byte_level) {
    std::string out;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += *tokens[i];
    }
    return out;
  }
  // Each token whose characters all stand for bytes gives those bytes; any other token (an
  // added token such as "<｜User｜>") gives its own UTF-8. The bytes then become text.
  std::string bytes;
  for (const std::string* t : tokens) {
    const std::size_t mark = bytes.size();
    std::size_t i = 0;
    bool all = true;
    while (i < t->size()) {
      const int b = byte_level::char_to_byte(unicode::decode(t->data(), i));
      if (b < 0) {
        all = false;
        break;
      }
      bytes.push_back(static_cast<char>(b));
    }
    if (!all) {
      bytes.resize(mark);
      bytes += *t;
    }
  }
  if (!unicode::find_invalid_utf8(bytes)) return bytes;
  return unicode::replace_invalid_utf8(bytes);
}

}  // namespace rlft::tokenizer
