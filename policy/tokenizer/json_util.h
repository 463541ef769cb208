#pragma once
// Reading tokenizer.json components with errors that name the JSON path:
//   "tokenizer.json: pre_tokenizer.pretokenizers[0].behavior: expected a string".

#include <nlohmann/json.hpp>

#include <string>

#include "core/error.h"

namespace rlft::tokenizer {

inline const nlohmann::json& json_member(const nlohmann::json& j, const char* key, const std::string& where) {
  RLFT_CHECK(j.is_object(), "{}: expected an object", where);
  auto it = j.find(key);
  RLFT_CHECK(it != j.end(), "{}: '{}' is missing", where, key);
  return *it;
}

/// The "type" of a component (`kind` names it in the error: "normalizer", "decoder" …).
inline std::string json_type(const nlohmann::json& j, const std::string& where, const char* kind) {
  RLFT_CHECK(j.is_object(), "{}: expected a {} object", where, kind);
  auto it = j.find("type");
  RLFT_CHECK(it != j.end() && it->is_string(), "{}: the {} has no \"type\"", where, kind);
  return it->get<std::string>();
}

inline std::string json_string(const nlohmann::json& j, const char* key, const std::string& where) {
  const nlohmann::json& v = json_member(j, key, where);
  RLFT_CHECK(v.is_string(), "{}.{}: expected a string", where, key);
  return v.get<std::string>();
}

inline bool json_bool(const nlohmann::json& j, const char* key, const std::string& where, bool fallback) {
  RLFT_CHECK(j.is_object(), "{}: expected an object", where);
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  RLFT_CHECK(it->is_boolean(), "{}.{}: expected true or false", where, key);
  return it->get<bool>();
}

}  // namespace rlft::tokenizer
