#include "policy/tokenizer/byte_level.h"

#include "policy/tokenizer/unicode.h"

namespace rlft::tokenizer::byte_level {

std::string encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) unicode::append_utf8(out, byte_to_char(static_cast<uint8_t>(c)));
  return out;
}

bool decode(std::string_view token, std::string& out) {
  out.clear();
  std::size_t i = 0;
  while (i < token.size()) {
    const int b = char_to_byte(unicode::decode(token.data(), i));
    if (b < 0) return false;
    out.push_back(static_cast<char>(b));
  }
  return true;
}

}  // namespace rlft::tokenizer::byte_level
