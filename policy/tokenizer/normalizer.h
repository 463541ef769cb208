#pragma once
// Normalizers (tokenizer.json "normalizer"): NFC, NFD, NFKC, NFKD, Sequence, Prepend, Replace
// (String or Regex pattern) and Strip. Each applies to one piece of text between added tokens,
// as in Hugging Face `tokenizers`.

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rlft::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  /// Normalises `in` (valid UTF-8). Returns false when the text is unchanged (then `out` is
  /// untouched); otherwise writes the result to `out`.
  virtual bool apply(std::string_view in, std::string& out) const = 0;

  /// Parses tokenizer.json's "normalizer"; null gives nullptr. Unsupported types are errors
  /// naming them and `where`.
  static std::unique_ptr<Normalizer> from_json(const nlohmann::json& j, const std::string& where);
};

/// The normaliser of a piece, or `in` itself when there is none or it changes nothing.
std::string_view normalize_piece(const Normalizer* n, std::string_view in, std::string& storage);

}  // namespace rlft::tokenizer
