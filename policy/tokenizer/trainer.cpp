// Byte-level BPE training and the tokenizer.json it writes (see trainer.h).
#include "policy/tokenizer/trainer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <queue>
#include <unordered_set>

#include "core/error.h"
#include "policy/tokenizer/byte_level.h"
#include "policy/tokenizer/split_pattern.h"
#include "policy/tokenizer/unicode.h"

namespace rlft::tokenizer {
namespace {

using Json = nlohmann::ordered_json;

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t left_of(uint64_t k) {
  return static_cast<int32_t>(k >> 32);
}
int32_t right_of(uint64_t k) {
  return static_cast<int32_t>(k & 0xFFFFFFFFu);
}

Json byte_level_component(const char* type) {
  Json j;
  j["type"] = type;
  j["add_prefix_space"] = false;
  j["trim_offsets"] = false;
  j["use_regex"] = false;
  return j;
}

/// The pre-tokenizer the trainer writes (and counts words with): Qwen2's.
Json pre_tokenizer_json() {
  Json split;
  split["type"] = "Split";
  split["pattern"] = Json{{"Regex", kQwen2Regex}};
  split["behavior"] = "Isolated";
  split["invert"] = false;
  Json seq;
  seq["type"] = "Sequence";
  seq["pretokenizers"] = Json::array({split, byte_level_component("ByteLevel")});
  return seq;
}

}  // namespace

void BpeTrainerOptions::validate() const {
  std::unordered_set<std::string> seen;
  for (const std::string& s : special_tokens) {
    RLFT_CHECK_AS(UsageError, !s.empty(), "--special: a special token may not be empty");
    RLFT_CHECK_AS(UsageError, seen.insert(s).second, "--special '{}' is given twice", s);
    RLFT_CHECK_AS(UsageError, !unicode::find_invalid_utf8(s), "--special: '{}' is not valid UTF-8", s);
    std::string bytes;
    RLFT_CHECK_AS(UsageError, !(byte_level::decode(s, bytes) && bytes.size() == 1),
                  "--special '{}': that is the byte-level symbol of a single byte, which the vocabulary has already",
                  s);
  }
  const auto floor = static_cast<int>(special_tokens.size()) + 256;
  RLFT_CHECK_AS(UsageError, vocab_size >= floor,
                "--vocab-size {}: must be at least {} (the {} special tokens and the 256 byte symbols)", vocab_size,
                floor, special_tokens.size());
  RLFT_CHECK_AS(UsageError, min_frequency >= 1, "--min-frequency {}: must be >= 1", min_frequency);
}

BpeTrainer::BpeTrainer(BpeTrainerOptions options) : options_(std::move(options)) {
  options_.validate();
  for (std::size_t i = 0; i < options_.special_tokens.size(); ++i) {
    AddedToken t;
    t.id = static_cast<TokenId>(i);
    t.content = options_.special_tokens[i];
    t.normalized = false;
    t.special = true;
    specials_.push_back(t);
  }
  std::vector<const AddedToken*> ptrs;
  for (const AddedToken& t : specials_) ptrs.push_back(&t);
  matcher_ = AddedTokenMatcher(options_.special_tokens, ptrs);
  if (options_.nfc) normalizer_ = Normalizer::from_json(nlohmann::json{{"type", "NFC"}}, "normalizer");
  pre_tokenizer_ = PreTokenizer::from_json(nlohmann::json::parse(pre_tokenizer_json().dump()), "pre_tokenizer");
}

void BpeTrainer::feed(std::string_view text, const std::string& source) {
  if (auto bad = unicode::find_invalid_utf8(text))
    throw Error(fmt::format("{}: not valid UTF-8 at byte {}", source, *bad));
  stats_.bytes += static_cast<int64_t>(text.size());
  Words words;
  std::string storage;
  matcher_.split(text, [&](std::size_t b, std::size_t e, const AddedToken* tok) {
    if (tok) return;
    const std::string_view piece = normalize_piece(normalizer_.get(), text.substr(b, e - b), storage);
    if (piece.empty()) return;
    pre_tokenizer_.run(piece, words);
    for (const ByteRange& r : words.ranges) ++word_counts_[std::string(words.text.substr(r.begin, r.end - r.begin))];
  });
}

std::string BpeTrainer::train() {
  const auto n_special = static_cast<int32_t>(specials_.size());
  // Symbols: raw bytes of each id (for specials, the bytes their content stands for when read
  // as byte-level characters), and the tokenizer.json string of each id.
  std::vector<std::string> raw, json_token;
  std::unordered_map<std::string, int32_t> id_of_json;
  for (const AddedToken& t : specials_) {
    std::string bytes;
    raw.push_back(byte_level::decode(t.content, bytes) ? bytes : t.content);
    json_token.push_back(t.content);
    id_of_json.emplace(t.content, static_cast<int32_t>(json_token.size() - 1));
  }
  for (int b = 0; b < 256; ++b) {
    raw.emplace_back(1, static_cast<char>(b));
    json_token.push_back(byte_level::encode(raw.back()));
    id_of_json.emplace(json_token.back(), static_cast<int32_t>(json_token.size() - 1));
  }

  // Words as symbol sequences, and the pair counts over them.
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> counts;
  std::vector<std::pair<std::string, int64_t>> sorted(word_counts_.begin(), word_counts_.end());
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [w, c] : sorted) {
    std::vector<int32_t> syms;
    for (char ch : w) syms.push_back(n_special + static_cast<uint8_t>(ch));
    words.push_back(std::move(syms));
    counts.push_back(c);
  }
  stats_.n_words = words.size();
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;
  for (std::size_t w = 0; w < words.size(); ++w) {
    for (std::size_t i = 0; i + 1 < words[w].size(); ++i) {
      const uint64_t k = pair_key(words[w][i], words[w][i + 1]);
      pair_count[k] += counts[w];
      auto& list = where[k];
      if (list.empty() || list.back() != static_cast<int32_t>(w)) list.push_back(static_cast<int32_t>(w));
    }
  }

  struct Entry {
    int64_t count;
    uint64_t pair;
  };
  const auto worse = [&](const Entry& x, const Entry& y) {  // the heap's top is the best entry
    if (x.count != y.count) return x.count < y.count;
    const std::string &xa = raw[static_cast<std::size_t>(left_of(x.pair))],
                      &ya = raw[static_cast<std::size_t>(left_of(y.pair))];
    if (xa != ya) return xa > ya;
    return raw[static_cast<std::size_t>(right_of(x.pair))] > raw[static_cast<std::size_t>(right_of(y.pair))];
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(worse)> heap(worse);
  for (const auto& [k, c] : pair_count) heap.push({c, k});

  std::vector<std::pair<int32_t, int32_t>> merges;
  std::unordered_map<uint64_t, int64_t> delta;
  while (!heap.empty() && static_cast<int>(json_token.size()) <= options_.vocab_size) {
    const Entry top = heap.top();
    heap.pop();
    auto it = pair_count.find(top.pair);
    const int64_t current = it == pair_count.end() ? 0 : it->second;
    if (current != top.count) {  // stale: requeue with the current count
      if (current > 0) heap.push({current, top.pair});
      continue;
    }
    if (current < options_.min_frequency) break;
    const int32_t a = left_of(top.pair), b = right_of(top.pair);
    const std::string merged_raw = raw[static_cast<std::size_t>(a)] + raw[static_cast<std::size_t>(b)];
    const std::string merged_json = json_token[static_cast<std::size_t>(a)] + json_token[static_cast<std::size_t>(b)];
    int32_t id;
    if (auto found = id_of_json.find(merged_json); found != id_of_json.end()) {
      id = found->second;
    } else {
      if (static_cast<int>(json_token.size()) >= options_.vocab_size) break;
      id = static_cast<int32_t>(json_token.size());
      raw.push_back(merged_raw);
      json_token.push_back(merged_json);
      id_of_json.emplace(merged_json, id);
    }
    merges.emplace_back(a, b);

    std::vector<int32_t> affected = std::move(where[top.pair]);
    where.erase(top.pair);
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    delta.clear();
    for (int32_t w : affected) {
      std::vector<int32_t>& syms = words[static_cast<std::size_t>(w)];
      bool present = false;
      for (std::size_t i = 0; i + 1 < syms.size() && !present; ++i) present = syms[i] == a && syms[i + 1] == b;
      if (!present) continue;
      const int64_t c = counts[static_cast<std::size_t>(w)];
      for (std::size_t i = 0; i + 1 < syms.size(); ++i) delta[pair_key(syms[i], syms[i + 1])] -= c;
      std::vector<int32_t> next;
      next.reserve(syms.size());
      for (std::size_t i = 0; i < syms.size(); ++i) {
        if (i + 1 < syms.size() && syms[i] == a && syms[i + 1] == b) {
          next.push_back(id);
          ++i;
        } else {
          next.push_back(syms[i]);
        }
      }
      syms.swap(next);
      for (std::size_t i = 0; i + 1 < syms.size(); ++i) {
        const uint64_t k = pair_key(syms[i], syms[i + 1]);
        delta[k] += c;
        if (syms[i] == id || syms[i + 1] == id) {
          auto& list = where[k];
          if (list.empty() || list.back() != w) list.push_back(w);
        }
      }
    }
    for (const auto& [k, d] : delta) {
      if (d == 0) continue;
      int64_t& c = pair_count[k];
      c += d;
      if (c <= 0)
        pair_count.erase(k);
      else if (d > 0)
        heap.push({c, k});
    }
  }
  stats_.n_merges = merges.size();
  stats_.vocab_size = static_cast<int>(json_token.size());

  Json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  Json added = Json::array();
  for (const AddedToken& t : specials_) {
    Json e;
    e["id"] = t.id;
    e["content"] = t.content;
    e["single_word"] = false;
    e["lstrip"] = false;
    e["rstrip"] = false;
    e["normalized"] = false;
    e["special"] = true;
    added.push_back(e);
  }
  j["added_tokens"] = added;
  j["normalizer"] = options_.nfc ? Json{{"type", "NFC"}} : Json(nullptr);
  j["pre_tokenizer"] = pre_tokenizer_json();
  j["post_processor"] = byte_level_component("ByteLevel");
  j["decoder"] = byte_level_component("ByteLevel");
  Json model;
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = nullptr;
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = false;
  model["byte_fallback"] = false;
  model["ignore_merges"] = false;
  Json vocab = Json::object();
  for (std::size_t id = 0; id < json_token.size(); ++id) vocab[json_token[id]] = id;
  model["vocab"] = vocab;
  Json merge_list = Json::array();
  for (const auto& [a, b] : merges)
    merge_list.push_back(
        Json::array({json_token[static_cast<std::size_t>(a)], json_token[static_cast<std::size_t>(b)]}));
  model["merges"] = merge_list;
  j["model"] = model;
  return j.dump(2) + "\n";
}

}  // namespace rlft::tokenizer
