// The BPE model (Hugging Face tokenizers models/bpe/{model,word,cache}.rs, re-expressed).
#include "policy/tokenizer/bpe.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <cstring>
#include <mutex>
#include <queue>

#include "core/error.h"
#include "policy/tokenizer/byte_level.h"
#include "policy/tokenizer/json_util.h"
#include "policy/tokenizer/unicode.h"

namespace rlft::tokenizer {
namespace {

constexpr int32_t kNoRank = INT32_MAX;
/// Words this long or longer are not cached (as in Hugging Face: MAX_LENGTH 256).
constexpr std::size_t kMaxCachedBytes = 256;
/// Words with more initial symbols than this are merged with a heap instead of rescans.
constexpr std::size_t kMaxScanSymbols = 96;

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ s.size();
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ mix(w)) * 0x9E3779B97F4A7C15ULL;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  return mix(h ^ tail ^ (static_cast<uint64_t>(s.size() - i) << 59));
}

}  // namespace

/// (left id, right id) → (rank, merged id): open addressing, linear probing.
struct BpeModel::MergeTable {
  struct Slot {
    uint64_t key = UINT64_MAX;
    int32_t rank = kNoRank;
    TokenId merged = -1;
  };
  std::vector<Slot> slots;
  uint64_t mask = 0;

  explicit MergeTable(std::size_t n) {
    std::size_t cap = 16;
    while (cap < n + n / 2 + 1) cap <<= 1;  // load <= 2/3: a smaller table misses the CPU cache less
    slots.resize(cap);
    mask = cap - 1;
  }
  static uint64_t key(TokenId a, TokenId b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  /// Later merges of the same pair replace earlier ones (Hugging Face collects into a map).
  void put(TokenId a, TokenId b, int32_t rank, TokenId merged) {
    const uint64_t k = key(a, b);
    for (uint64_t i = mix(k) & mask;; i = (i + 1) & mask) {
      if (slots[i].key == k || slots[i].key == UINT64_MAX) {
        slots[i] = {k, rank, merged};
        return;
      }
    }
  }
  const Slot* get(TokenId a, TokenId b) const {
    const uint64_t k = key(a, b);
    for (uint64_t i = mix(k) & mask;; i = (i + 1) & mask) {
      const Slot& s = slots[i];
      if (s.key == k) return &s;
      if (s.key == UINT64_MAX) return nullptr;
    }
  }
};

/// Merged words by their bytes: shards with their own lock, taken with try_lock so that a
/// busy shard costs a recomputation, never a wait. A full shard starts afresh.
class BpeModel::WordCache {
 public:
  explicit WordCache(std::size_t capacity_words) {
    const std::size_t per_shard = std::max<std::size_t>(16, capacity_words / kShards);
    std::size_t cap = 32;
    while (cap < per_shard * 2) cap <<= 1;
    for (Shard& s : shards_) {
      s.max_entries = per_shard;
      s.slots.assign(cap, Slot{});
      s.mask = cap - 1;
    }
  }

  bool find(std::string_view key, uint64_t h, std::vector<TokenId>& out) {
    Shard& s = shards_[h % kShards];
    std::unique_lock<std::mutex> lock(s.mu, std::try_to_lock);
    if (!lock.owns_lock()) return false;
    for (uint64_t i = (h >> 8) & s.mask;; i = (i + 1) & s.mask) {
      const Slot& slot = s.slots[i];
      if (slot.n_ids == 0) break;
      if (slot.hash == h && slot.key_len == key.size() &&
          std::memcmp(s.keys.data() + slot.key_off, key.data(), key.size()) == 0) {
        out.insert(out.end(), s.values.begin() + slot.val_off, s.values.begin() + slot.val_off + slot.n_ids);
        ++s.hits;
        return true;
      }
    }
    ++s.misses;
    return false;
  }

  void insert(std::string_view key, uint64_t h, const TokenId* ids, std::size_t n) {
    if (n == 0 || n > UINT16_MAX) return;
    Shard& s = shards_[h % kShards];
    std::unique_lock<std::mutex> lock(s.mu, std::try_to_lock);
    if (!lock.owns_lock()) return;
    if (s.entries >= s.max_entries) s.reset();
    uint64_t i = (h >> 8) & s.mask;
    for (;; i = (i + 1) & s.mask) {
      const Slot& slot = s.slots[i];
      if (slot.n_ids == 0) break;
      if (slot.hash == h && slot.key_len == key.size() &&
          std::memcmp(s.keys.data() + slot.key_off, key.data(), key.size()) == 0)
        return;
    }
    Slot& slot = s.slots[i];
    slot.hash = h;
    slot.key_off = static_cast<uint32_t>(s.keys.size());
    slot.key_len = static_cast<uint16_t>(key.size());
    slot.val_off = static_cast<uint32_t>(s.values.size());
    slot.n_ids = static_cast<uint16_t>(n);
    s.keys.append(key.data(), key.size());
    s.values.insert(s.values.end(), ids, ids + n);
    ++s.entries;
  }

  CacheStats stats() {
    CacheStats st;
    for (Shard& s : shards_) {
      std::lock_guard<std::mutex> lock(s.mu);
      st.hits += s.hits;
      st.misses += s.misses;
      st.entries += s.entries;
    }
    return st;
  }

  void clear() {
    for (Shard& s : shards_) {
      std::lock_guard<std::mutex> lock(s.mu);
      s.reset();
      s.hits = s.misses = 0;
    }
  }

 private:
  static constexpr std::size_t kShards = 16;
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_off = 0;
    uint32_t val_off = 0;
    uint16_t key_len = 0;
    uint16_t n_ids = 0;  ///< 0 marks an empty slot
  };
  struct Shard {
    std::mutex mu;
    std::vector<Slot> slots;
    uint64_t mask = 0;
    std::string keys;
    std::vector<TokenId> values;
    std::size_t entries = 0, max_entries = 0;
    uint64_t hits = 0, misses = 0;
    void reset() {
      std::fill(slots.begin(), slots.end(), Slot{});
      keys.clear();
      values.clear();
      entries = 0;
    }
  };
  std::array<Shard, kShards> shards_;
};

BpeModel::BpeModel(std::vector<std::pair<std::string, TokenId>> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options)
    : options_(std::move(options)) {
  TokenId max_id = -1;
  for (const auto& [token, id] : vocab) {
    RLFT_CHECK(id >= 0, "model.vocab: token '{}' has a negative id {}", token, id);
    max_id = std::max(max_id, id);
  }
  id_to_token_.resize(static_cast<std::size_t>(max_id + 1));
  has_id_.assign(static_cast<std::size_t>(max_id + 1), false);
  vocab_.reserve(vocab.size() * 2);
  for (auto& [token, id] : vocab) {
    id_to_token_[static_cast<std::size_t>(id)] = token;
    has_id_[static_cast<std::size_t>(id)] = true;
    vocab_[std::move(token)] = id;
  }

  const std::size_t prefix_len = options_.continuing_subword_prefix.size();
  merges_ = std::make_unique<MergeTable>(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    RLFT_CHECK(ia != vocab_.end(), "model.merges[{}] (\"{} {}\"): token '{}' is not in the vocabulary", rank, a, b, a);
    RLFT_CHECK(ib != vocab_.end(), "model.merges[{}] (\"{} {}\"): token '{}' is not in the vocabulary", rank, a, b, b);
    RLFT_CHECK(b.size() >= prefix_len, "model.merges[{}]: token '{}' is shorter than continuing_subword_prefix", rank,
               b);
    const std::string merged = a + b.substr(prefix_len);
    auto im = vocab_.find(merged);
    RLFT_CHECK(im != vocab_.end(), "model.merges[{}] (\"{} {}\"): the merged token '{}' is not in the vocabulary", rank,
               a, b, merged);
    merges_->put(ia->second, ib->second, static_cast<int32_t>(rank), im->second);
  }
  n_merges_ = merges.size();

  if (options_.unk_token) {
    auto it = vocab_.find(*options_.unk_token);
    RLFT_CHECK(it != vocab_.end(), "model.unk_token '{}' is not in the vocabulary", *options_.unk_token);
    unk_id_ = it->second;
  }
  byte_ids_.fill(-1);
  if (options_.byte_level) {
    for (int b = 0; b < 256; ++b) {
      std::string s;
      unicode::append_utf8(s, byte_level::byte_to_char(static_cast<uint8_t>(b)));
      auto it = vocab_.find(s);
      if (it != vocab_.end()) byte_ids_[static_cast<std::size_t>(b)] = it->second;
    }
    if (options_.ignore_merges) {
      std::string raw;
      for (const auto& [token, id] : vocab_)
        if (byte_level::decode(token, raw)) raw_vocab_.emplace(raw, id);
    }
  }
  if (options_.cache_words > 0) cache_ = std::make_unique<WordCache>(options_.cache_words);
}

BpeModel::~BpeModel() = default;

std::unique_ptr<BpeModel> BpeModel::from_json(const nlohmann::json& m, const std::string& where, bool byte_level,
                                              std::size_t cache_words) {
  const std::string type = m.is_object() && m.contains("type") ? json_type(m, where, "model") : std::string("BPE");
  RLFT_CHECK(type == "BPE", "{}: model type '{}' is not supported by rlft (supported: BPE)", where, type);
  RLFT_CHECK(m.contains("merges"), "{}: a BPE model needs \"merges\"", where);
  BpeOptions o;
  o.byte_level = byte_level;
  o.cache_words = cache_words;
  const auto opt_string = [&](const char* key) -> std::optional<std::string> {
    auto it = m.find(key);
    if (it == m.end() || it->is_null()) return std::nullopt;
    RLFT_CHECK(it->is_string(), "{}.{}: expected a string or null", where, key);
    return it->get<std::string>();
  };
  if (auto it = m.find("dropout"); it != m.end() && !it->is_null()) {
    RLFT_CHECK(it->is_number(), "{}.dropout: expected a number or null", where);
    RLFT_CHECK(it->get<double>() == 0.0,
               "{}.dropout = {}: BPE dropout is random at encode time; rlft encodes deterministically and supports "
               "only null or 0",
               where, it->get<double>());
  }
  o.unk_token = opt_string("unk_token");
  o.continuing_subword_prefix = opt_string("continuing_subword_prefix").value_or("");
  o.end_of_word_suffix = opt_string("end_of_word_suffix").value_or("");
  o.fuse_unk = json_bool(m, "fuse_unk", where, false);
  o.byte_fallback = json_bool(m, "byte_fallback", where, false);
  o.ignore_merges = json_bool(m, "ignore_merges", where, false);

  const nlohmann::json& v = json_member(m, "vocab", where);
  RLFT_CHECK(v.is_object(), "{}.vocab: expected an object of token: id", where);
  std::vector<std::pair<std::string, TokenId>> vocab;
  vocab.reserve(v.size());
  for (auto it = v.begin(); it != v.end(); ++it) {
    RLFT_CHECK(it.value().is_number_integer(), "{}.vocab['{}']: expected an integer id", where, it.key());
    const int64_t id = it.value().get<int64_t>();
    RLFT_CHECK(id >= 0 && id < INT32_MAX, "{}.vocab['{}'] = {}: ids must be in [0, 2^31)", where, it.key(), id);
    vocab.emplace_back(it.key(), static_cast<TokenId>(id));
  }
  const nlohmann::json& ms = m["merges"];
  RLFT_CHECK(ms.is_array(), "{}.merges: expected a list", where);
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(ms.size());
  for (std::size_t i = 0; i < ms.size(); ++i) {
    const nlohmann::json& e = ms[i];
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const std::size_t sp = s.find(' ');
      RLFT_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos,
                 "{}.merges[{}] = \"{}\": expected two tokens separated by one space", where, i, s);
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      throw Error(fmt::format("{}.merges[{}]: expected \"a b\" or [\"a\", \"b\"]", where, i));
    }
  }
  return std::make_unique<BpeModel>(std::move(vocab), merges, std::move(o));  // its errors name model.*
}

std::optional<TokenId> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(TokenId id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= id_to_token_.size() || !has_id_[static_cast<std::size_t>(id)])
    return nullptr;
  return &id_to_token_[static_cast<std::size_t>(id)];
}

void BpeModel::initial_symbols(std::string_view word, std::vector<TokenId>& symbols) const {
  symbols.clear();
  const bool plain = options_.continuing_subword_prefix.empty() && options_.end_of_word_suffix.empty();
  if (options_.byte_level && plain) {
    // Every byte-level character is one byte; a byte missing from the vocabulary behaves like
    // any unknown character below.
    bool complete = true;
    for (char c : word) {
      const TokenId id = byte_ids_[static_cast<uint8_t>(c)];
      if (id < 0) complete = false;
      symbols.push_back(id);
    }
    if (complete) return;
    symbols.clear();
  }
  // The general path: character by character, as Hugging Face's merge_word.
  const std::string mapped = options_.byte_level ? byte_level::encode(word) : std::string();
  const std::string_view w = options_.byte_level ? std::string_view(mapped) : word;
  std::optional<std::pair<TokenId, bool>> pending_unk;  // (id, present)
  std::string s;
  std::size_t i = 0;
  while (i < w.size()) {
    const std::size_t start = i;
    i += unicode::sequence_length(static_cast<unsigned char>(w[i]));
    s.clear();
    if (start > 0) s += options_.continuing_subword_prefix;
    s.append(w.data() + start, i - start);
    if (i == w.size()) s += options_.end_of_word_suffix;
    auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      if (pending_unk) symbols.push_back(pending_unk->first), pending_unk.reset();
      symbols.push_back(it->second);
      continue;
    }
    if (options_.byte_fallback) {
      std::vector<TokenId> bytes;
      for (char c : s) {
        auto bt = vocab_.find(fmt::format("<0x{:02X}>", static_cast<uint8_t>(c)));
        if (bt == vocab_.end()) {
          bytes.clear();
          break;
        }
        bytes.push_back(bt->second);
      }
      if (!bytes.empty()) {
        symbols.insert(symbols.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk && !options_.fuse_unk) symbols.push_back(pending_unk->first);
      if (!pending_unk || !options_.fuse_unk) pending_unk = std::make_pair(*unk_id_, true);
    }
    // Without unk, byte fallback or a vocabulary entry the character is dropped (as there).
  }
  if (pending_unk) symbols.push_back(pending_unk->first);
}

void BpeModel::merge_symbols(std::vector<TokenId>& sym) const {
  const std::size_t n = sym.size();
  if (n < 2) return;
  if (n <= kMaxScanSymbols) {
    // Rescan for the lowest (rank, position): words are short, and this is what the heap of
    // Hugging Face's Word::merge_all pops in the same order.
    int32_t rank[kMaxScanSymbols];
    TokenId merged[kMaxScanSymbols];
    std::size_t m = n;
    const auto look = [&](std::size_t k) {
      const MergeTable::Slot* s = merges_->get(sym[k], sym[k + 1]);
      rank[k] = s ? s->rank : kNoRank;
      merged[k] = s ? s->merged : -1;
    };
    for (std::size_t k = 0; k + 1 < m; ++k) look(k);
    while (m > 1) {
      std::size_t best = 0;
      for (std::size_t k = 1; k + 1 < m; ++k)
        if (rank[k] < rank[best]) best = k;
      if (rank[best] == kNoRank) break;
      sym[best] = merged[best];
      for (std::size_t k = best + 1; k + 1 < m; ++k) sym[k] = sym[k + 1];
      for (std::size_t k = best; k + 2 < m; ++k) rank[k] = rank[k + 1], merged[k] = merged[k + 1];
      --m;
      if (best > 0) look(best - 1);
      if (best + 1 < m) look(best);
    }
    sym.resize(m);
    return;
  }
  // Long words: Hugging Face's algorithm — a min-heap of (rank, position) over a linked list,
  // skipping entries that went stale.
  struct Entry {
    int32_t rank;
    int32_t pos;
    TokenId merged;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  for (std::size_t k = 0; k < n; ++k) {
    prev[k] = static_cast<int32_t>(k) - 1;
    next[k] = k + 1 < n ? static_cast<int32_t>(k + 1) : -1;
    if (k + 1 < n)
      if (const MergeTable::Slot* s = merges_->get(sym[k], sym[k + 1]))
        heap.push({s->rank, static_cast<int32_t>(k), s->merged});
  }
  while (!heap.empty()) {
    const Entry top = heap.top();
    heap.pop();
    const auto p = static_cast<std::size_t>(top.pos);
    if (!alive[p] || next[p] < 0) continue;
    const auto q = static_cast<std::size_t>(next[p]);
    const MergeTable::Slot* cur = merges_->get(sym[p], sym[q]);
    if (!cur || cur->merged != top.merged) continue;
    sym[p] = top.merged;
    alive[q] = false;
    next[p] = next[q];
    if (next[q] >= 0) prev[static_cast<std::size_t>(next[q])] = static_cast<int32_t>(p);
    if (prev[p] >= 0) {
      const auto l = static_cast<std::size_t>(prev[p]);
      if (const MergeTable::Slot* s = merges_->get(sym[l], sym[p])) heap.push({s->rank, prev[p], s->merged});
    }
    if (next[p] >= 0) {
      if (const MergeTable::Slot* s = merges_->get(sym[p], sym[static_cast<std::size_t>(next[p])]))
        heap.push({s->rank, static_cast<int32_t>(p), s->merged});
    }
  }
  std::size_t out = 0;
  for (std::size_t k = 0; k < n; ++k)
    if (alive[k]) sym[out++] = sym[k];
  sym.resize(out);
}

void BpeModel::encode_word(std::string_view word, std::vector<TokenId>& out, std::vector<TokenId>& symbols) const {
  if (word.empty()) return;
  if (options_.byte_level && word.size() == 1 && byte_ids_[static_cast<uint8_t>(word[0])] >= 0 &&
      options_.continuing_subword_prefix.empty() && options_.end_of_word_suffix.empty()) {
    out.push_back(byte_ids_[static_cast<uint8_t>(word[0])]);
    return;
  }
  if (options_.ignore_merges) {
    if (options_.byte_level) {
      auto it = raw_vocab_.find(std::string(word));
      if (it != raw_vocab_.end()) return out.push_back(it->second);
    } else if (auto it = vocab_.find(std::string(word)); it != vocab_.end()) {
      return out.push_back(it->second);
    }
  }
  const bool cacheable = cache_ && word.size() < kMaxCachedBytes;
  const uint64_t h = cacheable ? hash_bytes(word) : 0;
  if (cacheable && cache_->find(word, h, out)) return;
  initial_symbols(word, symbols);
  merge_symbols(symbols);
  out.insert(out.end(), symbols.begin(), symbols.end());
  if (cacheable) cache_->insert(word, h, symbols.data(), symbols.size());
}

CacheStats BpeModel::cache_stats() const {
  return cache_ ? cache_->stats() : CacheStats{};
}

void BpeModel::clear_cache() const {
  if (cache_) cache_->clear();
}

}  // namespace rlft::tokenizer
