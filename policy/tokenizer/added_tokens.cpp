// Added-token matching (Hugging Face tokenizers tokenizer/added_vocabulary.rs, re-expressed).
#include "policy/tokenizer/added_tokens.h"

#include <algorithm>

#include "policy/tokenizer/unicode.h"

namespace rlft::tokenizer {
namespace {

uint16_t flags_before(std::string_view text, std::size_t pos) {
  if (pos == 0) return 0;
  std::size_t i = unicode::previous_start(text, pos);
  return unicode::flags(unicode::decode(text.data(), i));
}

uint16_t flags_at(std::string_view text, std::size_t pos) {
  if (pos >= text.size()) return 0;
  return unicode::flags(unicode::decode(text.data(), pos));
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<std::string>& patterns, std::vector<const AddedToken*> tokens)
    : root_(256, -1), tokens_(std::move(tokens)) {
  // Build with per-node child lists, then lay the edges out contiguously.
  std::vector<std::vector<Edge>> children(1);
  std::vector<int32_t> terminal(1, -1);
  for (std::size_t t = 0; t < patterns.size(); ++t) {
    const std::string& p = patterns[t];
    if (p.empty()) continue;
    int32_t node = 0;
    for (char c : p) {
      const auto b = static_cast<uint8_t>(c);
      auto& kids = children[static_cast<std::size_t>(node)];
      auto it = std::find_if(kids.begin(), kids.end(), [&](const Edge& e) { return e.byte == b; });
      if (it != kids.end()) {
        node = it->node;
      } else {
        const auto fresh = static_cast<int32_t>(children.size());
        kids.push_back({b, fresh});
        children.emplace_back();
        terminal.push_back(-1);
        node = fresh;
      }
    }
    // The first of two equal patterns is the one found (they cannot both match anyway).
    if (terminal[static_cast<std::size_t>(node)] < 0)
      terminal[static_cast<std::size_t>(node)] = static_cast<int32_t>(t);
  }
  nodes_.resize(children.size());
  for (std::size_t n = 0; n < children.size(); ++n) {
    nodes_[n].token = terminal[n];
    nodes_[n].first_edge = static_cast<uint32_t>(edges_.size());
    nodes_[n].n_edges = static_cast<uint32_t>(children[n].size());
    edges_.insert(edges_.end(), children[n].begin(), children[n].end());
  }
  for (const Edge& e : children[0]) root_[e.byte] = e.node;
  if (children[0].empty()) tokens_.clear();
}

bool AddedTokenMatcher::longest_at(std::string_view text, std::size_t pos, std::size_t& end, int32_t& token) const {
  int32_t node = root_[static_cast<uint8_t>(text[pos])];
  bool found = false;
  std::size_t i = pos + 1;
  while (node >= 0) {
    const Node& n = nodes_[static_cast<std::size_t>(node)];
    if (n.token >= 0) {
      found = true;
      end = i;
      token = n.token;
    }
    if (i >= text.size()) break;
    const auto b = static_cast<uint8_t>(text[i]);
    int32_t next = -1;
    for (uint32_t k = 0; k < n.n_edges; ++k) {
      const Edge& e = edges_[n.first_edge + k];
      if (e.byte == b) {
        next = e.node;
        break;
      }
    }
    node = next;
    ++i;
  }
  return found;
}

bool AddedTokenMatcher::adjust(std::string_view text, const AddedToken& t, std::size_t floor, std::size_t& begin,
                               std::size_t& end) const {
  if (t.single_word) {
    const bool start_ok = begin == 0 || !(flags_before(text, begin) & unicode::kRustWord);
    const bool stop_ok = end == text.size() || !(flags_at(text, end) & unicode::kRustWord);
    if (!start_ok || !stop_ok) return false;
  }
  if (t.lstrip) {
    std::size_t b = begin;
    while (b > 0 && (flags_before(text, b) & unicode::kRustSpace)) b = unicode::previous_start(text, b);
    begin = std::max(b, floor);
  }
  if (t.rstrip) {
    while (end < text.size()) {
      std::size_t next = end;
      if (!(unicode::flags(unicode::decode(text.data(), next)) & unicode::kRustSpace)) break;
      end = next;
    }
  }
  return true;
}

}  // namespace rlft::tokenizer
