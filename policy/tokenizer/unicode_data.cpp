// The per-code-point lookups of policy/tokenizer/unicode.h over the generated tables of
// unicode_tables.inc (tests/js/gen_unicode_tables.js writes them; see there for where each
// fact comes from).
#include <algorithm>

#include "policy/tokenizer/unicode.h"

namespace rlft::tokenizer::unicode {
namespace {

struct Decomposition {
  uint32_t cp;
  uint16_t offset;
  uint8_t length;
};
struct Composition {
  uint32_t first;
  uint32_t second;
  uint32_t composite;
};

#include "policy/tokenizer/unicode_tables.inc"

template <typename Table, std::size_t N>
const Table* find_cp(const Table (&table)[N], uint32_t cp) {
  const Table* it = std::lower_bound(table, table + N, cp, [](const Table& t, uint32_t c) { return t.cp < c; });
  return it != table + N && it->cp == cp ? it : nullptr;
}

}  // namespace

uint16_t flags(uint32_t cp) {
  if (cp >= 0x110000) return 0;
  return kFlagsBlocks[kFlagsIndex[cp >> kBlockShift]][cp & kBlockMask];
}

uint8_t combining_class(uint32_t cp) {
  if (cp >= 0x110000) return 0;
  return kCccBlocks[kCccIndex[cp >> kBlockShift]][cp & kBlockMask];
}

Span decomposition(uint32_t cp, bool compat) {
  if (compat) {
    if (const Decomposition* d = find_cp(kCompatDecomp, cp)) return {kCompatDecompPool + d->offset, d->length};
  }
  if (const Decomposition* d = find_cp(kCanonicalDecomp, cp)) return {kCanonicalDecompPool + d->offset, d->length};
  return {nullptr, 0};
}

uint32_t compose_pair(uint32_t first, uint32_t second) {
  const Composition* end = std::end(kCompositions);
  const Composition* it = std::lower_bound(std::begin(kCompositions), end, std::make_pair(first, second),
                                           [](const Composition& c, const std::pair<uint32_t, uint32_t>& key) {
                                             return std::make_pair(c.first, c.second) < key;
                                           });
  return it != end && it->first == first && it->second == second ? it->composite : 0;
}

}  // namespace rlft::tokenizer::unicode
