#pragma once
// config.json of a Hugging Face checkpoint: read, typed access with errors naming the file
// and the key, and write-back that keeps every key (known to rlft or not) it had.
//
// Written as Hugging Face writes it (json.dumps(indent=2, sort_keys=True) + "\n"): keys
// sorted, two-space indent, atomically (temp file, fsync, rename, fsync dir).

#include "policy/checkpoint/file_io.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace rlft::checkpoint {

/// A config.json: the whole JSON object plus where it came from (for errors).
class HfConfig {
 public:
  HfConfig() : json_(nlohmann::json::object()) {}
  /// `source` names the config in errors ("DIR/config.json", "model: section of x.yaml").
  explicit HfConfig(nlohmann::json json, std::string source = "<config>");

  /// Reads `path`: a config.json file or a checkpoint directory holding one. Throws
  /// rlft::Error naming the file when missing, not JSON (with the parse position), or not
  /// a JSON object.
  static HfConfig load(const std::string& path);

  /// True when `key` is present and not null.
  bool has(const std::string& key) const;
  /// The value of `key`, which must be present and convertible to T. Supported T: bool,
  /// int, int64_t, double, std::string, std::vector<int64_t>, std::vector<double>,
  /// std::vector<std::string>, nlohmann::json. Throws rlft::Error "FILE: key `k`: missing"
  /// or "FILE: key `k` = VALUE: expected an integer" (numbers: an integer-valued key
  /// rejects 1.5; a double accepts an integer).
  template <typename T>
  T get(const std::string& key) const;
  /// The same with a fallback when absent or null.
  template <typename T>
  T get(const std::string& key, const T& fallback) const;
  /// Sets (or adds) a key.
  template <typename T>
  void set(const std::string& key, const T& value) {
    json_[key] = value;
  }

  const nlohmann::json& json() const { return json_; }
  nlohmann::json& json() { return json_; }
  const std::string& source() const { return source_; }

  /// Writes the config to `path` (a file, or a directory → DIR/config.json) atomically.
  void save(const std::string& path) const;
  /// The text save() writes.
  std::string dump() const;

 private:
  nlohmann::json json_;
  std::string source_ = "<config>";
};

/// A JSON value for an error message: the value itself when it is short and flat, else its
/// type and size ("an array of 3 elements"). Never recurses, so a hostile, deeply nested
/// value cannot exhaust the stack.
std::string describe_json(const nlohmann::json& value);

/// Formats a config as Hugging Face does (sorted keys, indent 2, trailing newline).
std::string format_config_json(const nlohmann::json& json);

}  // namespace rlft::checkpoint
