#pragma once
// The GPT-2 byte-to-unicode map of byte-level BPE (algorithms.md §5.6): bytes 33-126, 161-172
// and 174-255 map to the same code point; the other 68 bytes map, in increasing byte order, to
// U+0100, U+0101, …

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace rlft::tokenizer::byte_level {

/// The code point that stands for byte `b`.
inline uint32_t byte_to_char(uint8_t b) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t next = 256;
    for (int i = 0; i < 256; ++i) {
      const bool same = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255);
      t[static_cast<std::size_t>(i)] = same ? static_cast<uint32_t>(i) : next++;
    }
    return t;
  }();
  return table[b];
}

/// The byte that code point `cp` stands for, or -1 when it stands for none.
inline int char_to_byte(uint32_t cp) {
  static const std::array<int16_t, 324> table = [] {
    std::array<int16_t, 324> t{};
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[byte_to_char(static_cast<uint8_t>(b))] = static_cast<int16_t>(b);
    return t;
  }();
  return cp < table.size() ? table[cp] : -1;
}

/// `bytes` with every byte replaced by its code point (UTF-8 encoded): a byte-level token.
std::string encode(std::string_view bytes);
/// The bytes a byte-level token stands for; false when a character of `token` stands for no
/// byte (then `out` is unspecified).
bool decode(std::string_view token, std::string& out);

}  // namespace rlft::tokenizer::byte_level
