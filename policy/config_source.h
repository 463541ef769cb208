#pragma once
// KeySource: one read interface over the two places a model's hyper-parameters come from —
// a checkpoint's config.json and a YAML `model:` section (through core/ConfigView) — so that
// every architecture reads its keys once, with the same names, defaults and errors.
//
// Errors name the source and the key: "ckpt/config.json: key `hidden_size` = "x": expected
// an integer", "run.yaml:4:3: model.hidden_size = 100: must be divisible by ...".

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rlft {
class ConfigView;
}

namespace rlft::policy {

class KeySource {
 public:
  virtual ~KeySource() = default;
  /// True when `key` is present and not null.
  virtual bool has(const std::string& key) const = 0;
  /// True when `key` is present, null included.
  virtual bool present(const std::string& key) const = 0;
  virtual int64_t get_int(const std::string& key, int64_t fallback) const = 0;
  virtual double get_double(const std::string& key, double fallback) const = 0;
  virtual bool get_bool(const std::string& key, bool fallback) const = 0;
  virtual std::string get_string(const std::string& key, const std::string& fallback) const = 0;
  /// A list of integers; a single integer reads as a one-element list (eos_token_id).
  virtual std::vector<int64_t> get_int_list(const std::string& key, const std::vector<int64_t>& fallback) const = 0;
  virtual std::vector<std::string> get_string_list(const std::string& key,
                                                   const std::vector<std::string>& fallback) const = 0;
  /// A sub-map (e.g. rope_scaling); an empty source when absent or null.
  virtual std::unique_ptr<KeySource> section(const std::string& key) const = 0;
  /// Throws ConfigError naming the source position, the key and its value, and `constraint`.
  [[noreturn]] virtual void fail(const std::string& key, const std::string& constraint) const = 0;
  /// Marks the keys that are accepted but not used (so YAML does not call them unknown).
  virtual void accept(const std::vector<std::string>& keys) const = 0;
  /// YAML: throws on keys no reader asked for. JSON: nothing (HF configs carry many keys).
  virtual void reject_unknown_keys() const = 0;

  /// Required variants: fail(key, "missing") when absent.
  int64_t require_int(const std::string& key) const;
  double require_double(const std::string& key) const;
};

/// config.json text parsed as a JSON object; `source` names it in errors.
std::unique_ptr<KeySource> json_source(const nlohmann::json& object, const std::string& source);
/// A YAML `model:` section.
std::unique_ptr<KeySource> yaml_source(const ConfigView& view);

}  // namespace rlft::policy
