#pragma once
// The BPE model of tokenizer.json ("model": {"type": "BPE", …}): vocabulary, ranked merges, and
// the merge loop of Hugging Face's models/bpe (lowest-rank adjacent pair first, leftmost on
// ties, until no pair has a rank), with a cache of the words it has already merged.
//
// Words arrive as raw UTF-8 bytes. With `byte_level` (the pre-tokenizer ends in ByteLevel) each
// byte is one initial symbol, the vocabulary entry of its byte-level character; otherwise each
// character is (with continuing_subword_prefix / end_of_word_suffix applied as there), and
// characters missing from the vocabulary go to byte_fallback, the unk token, or are dropped,
// as in Hugging Face.

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rlft::tokenizer {

using TokenId = int32_t;

struct BpeOptions {
  std::optional<std::string> unk_token;   ///< unknown characters become this token (when set)
  std::string continuing_subword_prefix;  ///< prepended to every non-first character ("" = none)
  std::string end_of_word_suffix;         ///< appended to the last character ("" = none)
  bool fuse_unk = false;                  ///< consecutive unknown characters make one unk
  bool byte_fallback = false;             ///< unknown characters become <0xXX> byte tokens
  bool ignore_merges = false;             ///< a word that is itself in the vocabulary is one token
  bool byte_level = false;                ///< words are bytes of a ByteLevel pre-tokenizer
  std::size_t cache_words = 32768;        ///< word cache capacity (0 disables the cache)
};

/// Counters of the word cache (cache_stats()).
struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;   ///< lookups of cacheable words that were not there
  uint64_t entries = 0;  ///< words held now
};

class BpeModel {
 public:
  /// `vocab`: (token, id) pairs; `merges`: pairs in rank order (rank = position). Throws
  /// rlft::Error naming the merge and the token when a merge names a token that is not in the
  /// vocabulary, or when the merged token is not in it.
  BpeModel(std::vector<std::pair<std::string, TokenId>> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options);
  ~BpeModel();
  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  /// Parses tokenizer.json's "model" (type BPE; merges as "a b" strings or ["a", "b"] pairs).
  /// `byte_level` and `cache_words` come from the rest of the tokenizer.
  static std::unique_ptr<BpeModel> from_json(const nlohmann::json& model, const std::string& where, bool byte_level,
                                             std::size_t cache_words);

  /// Appends the ids of one word to `out`; `scratch` is working space. Thread-safe.
  void encode_word(std::string_view word, std::vector<TokenId>& out, std::vector<TokenId>& scratch) const;

  std::optional<TokenId> token_to_id(std::string_view token) const;
  /// The token of `id`, or nullptr when the vocabulary has no such id.
  const std::string* id_to_token(TokenId id) const;
  /// Number of vocabulary entries (Hugging Face's get_vocab_size()).
  std::size_t vocab_entries() const { return vocab_.size(); }
  /// One past the largest id.
  TokenId id_end() const { return static_cast<TokenId>(id_to_token_.size()); }
  std::size_t merge_count() const { return n_merges_; }
  const BpeOptions& options() const { return options_; }

  CacheStats cache_stats() const;
  void clear_cache() const;

 private:
  struct MergeTable;
  class WordCache;

  void merge_symbols(std::vector<TokenId>& symbols) const;
  void initial_symbols(std::string_view word, std::vector<TokenId>& symbols) const;

  BpeOptions options_;
  std::unordered_map<std::string, TokenId> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<std::string, TokenId> raw_vocab_;  ///< byte-level + ignore_merges: raw bytes → id
  std::array<TokenId, 256> byte_ids_{};                 ///< byte-level: byte → id (-1 if absent)
  std::unique_ptr<MergeTable> merges_;
  std::size_t n_merges_ = 0;
  std::optional<TokenId> unk_id_;
  std::unique_ptr<WordCache> cache_;
};

}  // namespace rlft::tokenizer
