#pragma once
// Pre-tokenizers: how a normalised piece of text is cut into words before the BPE model sees
// them. Supported (tokenizer.json "pre_tokenizer"): Sequence, Split (Regex or String pattern,
// every behaviour, invert), ByteLevel (add_prefix_space, use_regex) and Digits.
//
// ByteLevel's byte-to-character mapping is not done here: rlft keeps words as raw UTF-8 bytes
// and the BPE model maps bytes to its byte-level symbols directly (byte_level() says so). This
// is why ByteLevel must be the last pre-tokenizer (as in every file that uses it).

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/tokenizer/split_pattern.h"

namespace rlft::tokenizer {

/// What Split does with the matches (Hugging Face's SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizerStep {
  enum class Kind { kSplit, kDigits, kByteLevel };
  Kind kind = Kind::kSplit;
  std::shared_ptr<const SplitPattern> pattern;  ///< kSplit; kByteLevel with use_regex: GPT-2's
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;             ///< kSplit: pieces between matches are the matches
  bool individual_digits = false;  ///< kDigits
  bool add_prefix_space = false;   ///< kByteLevel: prepend ' ' unless the piece starts with one
  bool use_regex = true;           ///< kByteLevel: also split with GPT-2's regex
};

/// The words of one piece: byte ranges into `text`, which is the piece itself or, after
/// ByteLevel added prefix spaces, a rewritten copy held in `storage`.
struct Words {
  std::string_view text;
  std::vector<ByteRange> ranges;
  std::string storage;
  std::string spare;               ///< scratch for the next rewrite
  std::vector<ByteRange> scratch;  ///< scratch ranges
  std::vector<ByteRange> matches;  ///< scratch matches
};

class PreTokenizer {
 public:
  /// No pre-tokenizer: each piece is one word.
  PreTokenizer() = default;
  /// `steps` in order (Sequences flattened). Throws rlft::Error when ByteLevel is not last.
  explicit PreTokenizer(std::vector<PreTokenizerStep> steps);

  /// Parses tokenizer.json's "pre_tokenizer" (null allowed). `where` names the JSON path in
  /// errors, e.g. "pre_tokenizer". Unsupported types are errors that name them.
  static PreTokenizer from_json(const nlohmann::json& j, const std::string& where);

  /// Cuts `piece` (valid UTF-8, non-empty) into words; empty words are dropped.
  void run(std::string_view piece, Words& out) const;

  /// True when the last step is ByteLevel: words are raw bytes for a byte-level model.
  bool byte_level() const { return byte_level_; }
  const std::vector<PreTokenizerStep>& steps() const { return steps_; }

 private:
  std::vector<PreTokenizerStep> steps_;
  bool byte_level_ = false;
};

/// Applies `behavior` (and `invert`) to the matches of a pattern in text[range] and appends the
/// resulting non-empty pieces (absolute offsets) to `out`, as Hugging Face's
/// NormalizedString::split does.
void split_by_matches(ByteRange range, const std::vector<ByteRange>& matches, SplitBehavior behavior, bool invert,
                      std::vector<ByteRange>& out);

}  // namespace rlft::tokenizer
