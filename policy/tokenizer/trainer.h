#pragma once
// Training a byte-level BPE tokenizer and writing it as a tokenizer.json that Hugging Face
// `tokenizers` loads and encodes identically to rlft (tested through the reference binding,
// tests/policy/tokenizer_train_test.cpp).
//
// The written tokenizer is Qwen2's design: NFC, Split with Qwen2's regex (Isolated), ByteLevel
// (no prefix space, no regex), a BPE model whose first ids are the special tokens, then the 256
// byte symbols in byte order, then one id per merge that made a new token; merges are written
// as ["a", "b"] pairs; special tokens are added tokens (special, not normalised).
//
// Training: words are counted once (special tokens cut out first, as when encoding); then the
// most frequent adjacent pair of symbols, counted over all words weighted by their counts, is
// merged everywhere, until the vocabulary is full or no pair occurs min_frequency times. Ties go
// to the pair whose left, then right, symbol's bytes sort first, so a run is deterministic.

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "policy/tokenizer/added_tokens.h"
#include "policy/tokenizer/normalizer.h"
#include "policy/tokenizer/pre_tokenizer.h"

namespace rlft::tokenizer {

struct BpeTrainerOptions {
  /// Ids in all: special tokens + 256 byte symbols + merged tokens. At least specials + 256.
  int vocab_size = 32000;
  /// A pair is merged only if it occurs at least this many times (>= 1).
  int64_t min_frequency = 2;
  /// Special tokens, given ids 0, 1, … in this order; none may repeat or be empty.
  std::vector<std::string> special_tokens;
  /// Normalise with NFC (as Qwen2); false writes no normalizer.
  bool nfc = true;

  /// Throws rlft::UsageError naming the option and its constraint.
  void validate() const;
};

struct TrainStats {
  std::size_t n_words = 0;   ///< distinct words counted
  std::size_t n_merges = 0;  ///< merges learned
  int vocab_size = 0;        ///< ids in the result
  int64_t bytes = 0;         ///< bytes of text fed
};

class BpeTrainer {
 public:
  explicit BpeTrainer(BpeTrainerOptions options);
  /// Counts the words of one text (valid UTF-8; throws rlft::Error naming `source` otherwise).
  void feed(std::string_view text, const std::string& source = "text");
  /// Learns the merges and returns the tokenizer.json text (pretty-printed).
  std::string train();
  const TrainStats& stats() const { return stats_; }

 private:
  BpeTrainerOptions options_;
  std::vector<AddedToken> specials_;
  AddedTokenMatcher matcher_;
  std::unique_ptr<Normalizer> normalizer_;
  PreTokenizer pre_tokenizer_;
  std::unordered_map<std::string, int64_t> word_counts_;
  TrainStats stats_;
};

}  // namespace rlft::tokenizer
