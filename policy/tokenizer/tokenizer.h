#pragma once
// rlft's tokenizer: a Hugging Face `tokenizer.json` with a BPE model, giving the ids that
// Hugging Face `tokenizers` gives (tested id for id against it on DeepSeek-V3's and Qwen3's
// files, tests/policy/tokenizer_golden_test.cpp).
//
// Encoding, as there: added tokens are cut out of the raw text (added_tokens.h); each piece
// between them is normalised (normalizer.h), searched for normalized added tokens, cut into
// words (pre_tokenizer.h) and each word is merged by the BPE model (bpe.h); the post-processor
// then adds its special tokens when asked to.
//
// Supported components, and anything else being an error that names it:
//   normalizer:     NFC, NFD, NFKC, NFKD, Sequence, Prepend, Replace, Strip
//   pre_tokenizer:  Sequence, Split, ByteLevel (last), Digits
//   model:          BPE (merges "a b" or ["a", "b"], ignore_merges, unk/fuse_unk, byte_fallback,
//                   continuing_subword_prefix, end_of_word_suffix; dropout only null/0)
//   post_processor: ByteLevel, TemplateProcessing (single sequences), RobertaProcessing,
//                   BertProcessing, Sequence
//   decoder:        ByteLevel, Sequence of ByteLevel, none (tokens joined by spaces)
// `truncation` and `padding` are not applied (rlft never truncates or pads while encoding); a
// file that sets them loads with a warning.
//
// Invalid UTF-8 (documented policy): encode() throws rlft::Error naming the byte offset, unless
// TokenizerOptions::invalid_utf8 is kReplace, which first replaces each maximal ill-formed
// subsequence with U+FFFD (Rust's from_utf8_lossy, Python's errors="replace"). decode() returns
// valid UTF-8 always: bytes that do not form characters (ids that cut a character) become
// U+FFFD the same way, as Hugging Face's ByteLevel decoder does. An id that is not in the
// vocabulary is an error in decode() (Hugging Face skips it silently).
//
// Thread safety: a Tokenizer is immutable after load; encode/decode may run concurrently.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/tokenizer/added_tokens.h"
#include "policy/tokenizer/bpe.h"

namespace rlft::tokenizer {

enum class InvalidUtf8 {
  kError,    ///< encode() throws rlft::Error naming the first bad byte
  kReplace,  ///< each maximal ill-formed subsequence becomes U+FFFD before encoding
};

struct TokenizerOptions {
  /// Capacity of the cache of merged words, in words; 0 disables it.
  std::size_t cache_words = 32768;
  /// What encode() does with input that is not UTF-8.
  InvalidUtf8 invalid_utf8 = InvalidUtf8::kError;
};

/// Special tokens named by tokenizer_config.json (beside tokenizer.json), when present.
struct SpecialTokens {
  std::optional<TokenId> bos, eos, pad, unk;
  std::optional<std::string> bos_token, eos_token, pad_token, unk_token;
  /// tokenizer_config.json's add_bos_token / add_eos_token. Hugging Face `tokenizers` does not
  /// act on them (only its post_processor adds tokens), and neither does encode(); prompt
  /// rendering (prompt.h) may.
  bool add_bos = false;
  bool add_eos = false;
  /// The Jinja chat template, verbatim (chat_template.h renders it).
  std::string chat_template;
};

class Tokenizer {
 public:
  /// Loads `path`: a tokenizer.json file, or a directory holding one. tokenizer_config.json in
  /// the same directory, when present, supplies special_tokens(). Throws rlft::Error naming
  /// the file and the component on anything rlft cannot honour exactly.
  static Tokenizer load(const std::string& path, const TokenizerOptions& options = {});
  /// The same from tokenizer.json text; `name` stands for the file in errors.
  static Tokenizer from_json(const std::string& json_text, const TokenizerOptions& options = {},
                             const std::string& name = "tokenizer.json");

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  /// The ids of `text`; `add_special_tokens` lets the post-processor add its tokens (BOS …).
  std::vector<TokenId> encode(std::string_view text, bool add_special_tokens = true) const;
  /// encode() of each text, on `n_threads` threads (0 = every core).
  std::vector<std::vector<TokenId>> encode_batch(const std::vector<std::string>& texts, bool add_special_tokens = true,
                                                 int n_threads = 0) const;
  /// The text of `ids`; special added tokens are left out with `skip_special_tokens`. Throws
  /// rlft::Error for an id that is not in the vocabulary.
  std::string decode(const std::vector<TokenId>& ids, bool skip_special_tokens = false) const;
  std::vector<std::string> decode_batch(const std::vector<std::vector<TokenId>>& batch,
                                        bool skip_special_tokens = false) const;

  /// Added tokens first, then the model's vocabulary (as Hugging Face's token_to_id).
  std::optional<TokenId> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(TokenId id) const;
  /// One past the largest id of the model vocabulary and the added tokens.
  TokenId vocab_size() const;
  /// True for ids of added tokens marked special.
  bool is_special(TokenId id) const;
  const SpecialTokens& special_tokens() const;
  const std::vector<AddedToken>& added_tokens() const;
  const BpeModel& model() const;

  CacheStats cache_stats() const;
  void clear_cache() const;
  /// A few lines naming the components and how they run (for `rlft tokenize --info`).
  std::string summary() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rlft::tokenizer
