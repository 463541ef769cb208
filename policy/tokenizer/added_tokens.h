#pragma once
// Added tokens (tokenizer.json "added_tokens"): strings that are cut out of the text before
// normalisation and pre-tokenisation and become one id each, as Hugging Face's
// AddedVocabulary does:
//  * tokens with normalized = false are matched in the raw text first; the pieces between
//    them are normalised and then searched for the normalized = true tokens (whose patterns
//    are their contents normalised);
//  * matching is leftmost-longest (Aho-Corasick semantics: the earliest start wins, the
//    longest token among those starting there), non-overlapping;
//  * single_word: a match whose neighbour characters are word characters (Rust regex \w) is
//    skipped; lstrip / rstrip: the token takes the whitespace on its left / right with it.

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/tokenizer/bpe.h"

namespace rlft::tokenizer {

struct AddedToken {
  TokenId id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

/// A trie of token patterns and the leftmost-longest search over it.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  /// `patterns[i]` is the text that token `tokens[i]` matches (its content, or its content
  /// normalised). Empty patterns are ignored.
  AddedTokenMatcher(const std::vector<std::string>& patterns, std::vector<const AddedToken*> tokens);

  bool empty() const { return tokens_.empty(); }

  /// Cuts `text` into pieces: calls emit(begin, end, token) for each piece in order, with
  /// token = nullptr for text between tokens. Pieces cover the text; none is empty.
  template <typename Emit>
  void split(std::string_view text, Emit&& emit) const;

 private:
  /// The longest pattern starting at text[pos]: its end and token index, or false.
  bool longest_at(std::string_view text, std::size_t pos, std::size_t& end, int32_t& token) const;
  /// Applies single_word / lstrip / rstrip to a match; false when single_word rejects it.
  bool adjust(std::string_view text, const AddedToken& t, std::size_t floor, std::size_t& begin,
              std::size_t& end) const;

  struct Node {
    int32_t token = -1;  ///< index into tokens_ when a pattern ends here
    uint32_t first_edge = 0;
    uint32_t n_edges = 0;
  };
  struct Edge {
    uint8_t byte;
    int32_t node;
  };
  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  std::vector<int32_t> root_;  ///< 256 root children, -1 if none
  std::vector<const AddedToken*> tokens_;
};

template <typename Emit>
void AddedTokenMatcher::split(std::string_view text, Emit&& emit) const {
  if (tokens_.empty()) {
    if (!text.empty()) emit(std::size_t{0}, text.size(), static_cast<const AddedToken*>(nullptr));
    return;
  }
  std::size_t start_offset = 0;  // end of the last piece emitted
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (root_[static_cast<uint8_t>(text[pos])] < 0) {
      ++pos;
      continue;
    }
    std::size_t end;
    int32_t t;
    if (!longest_at(text, pos, end, t)) {
      ++pos;
      continue;
    }
    std::size_t begin = pos;
    pos = end;  // the search resumes after the match, used or not
    if (!adjust(text, *tokens_[static_cast<std::size_t>(t)], start_offset, begin, end)) continue;
    if (start_offset < begin) emit(start_offset, begin, static_cast<const AddedToken*>(nullptr));
    emit(begin, end, tokens_[static_cast<std::size_t>(t)]);
    start_offset = end;
    pos = std::max(pos, end);
  }
  if (start_offset < text.size()) emit(start_offset, text.size(), static_cast<const AddedToken*>(nullptr));
}

}  // namespace rlft::tokenizer
