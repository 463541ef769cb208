#pragma once
// SHA-256 (FIPS 180-4), for the content hashes that deduplicate preference pairs. Written
// out because the project has no crypto dependency and needs nothing else from one.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace rlft::data {

/// The SHA-256 of `bytes` as 64 lowercase hex digits.
std::string sha256_hex(std::string_view bytes);

}  // namespace rlft::data
