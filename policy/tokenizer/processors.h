#pragma once
// The post-processor (special tokens around an encoded sequence) and the decoder (ids' tokens
// back to text) of tokenizer.json.

#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <string>
#include <vector>

#include "policy/tokenizer/bpe.h"

namespace rlft::tokenizer {

/// What the post-processor adds around a single sequence when special tokens are asked for.
/// ByteLevel adds nothing (it only trims offsets, which rlft does not report).
struct PostProcessor {
  std::vector<TokenId> prefix;
  std::vector<TokenId> suffix;
  std::string description = "none";

  /// Parses "post_processor" (null allowed): TemplateProcessing (single), RobertaProcessing,
  /// BertProcessing, ByteLevel, Sequence of these.
  static PostProcessor from_json(const nlohmann::json& j, const std::string& where);
};

/// The decoder: ByteLevel (tokens' characters back to bytes, then to text with U+FFFD for
/// bytes that form no character), or none (tokens joined with spaces).
struct Decoder {
  bool byte_level = false;
  std::string description = "none";

  static Decoder from_json(const nlohmann::json& j, const std::string& where);
  /// The text of `tokens`.
  std::string decode(const std::vector<const std::string*>& tokens) const;
};

}  // namespace rlft::tokenizer
