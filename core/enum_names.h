#pragma once
// EnumNames: the names a closed enum has in YAML, in one table that both directions read:
// name → value when a config is parsed, value → name for the default the config records.

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>

namespace rlft {

template <typename E, std::size_t N>
using EnumNames = std::array<std::pair<E, const char*>, N>;

/// The name of `value` ("?" when the table lacks it).
template <typename E, std::size_t N>
const char* enum_name(const EnumNames<E, N>& names, E value) {
  for (const auto& [v, name] : names)
    if (v == value) return name;
  return "?";
}

/// The value called `name`; nullopt for a name the table lacks.
template <typename E, std::size_t N>
std::optional<E> enum_value(const EnumNames<E, N>& names, const std::string& name) {
  for (const auto& [v, n] : names)
    if (name == n) return v;
  return std::nullopt;
}

}  // namespace rlft
