#include "policy/config_source.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/config.h"
#include "core/error.h"

namespace rlft::policy {

int64_t KeySource::require_int(const std::string& key) const {
  if (!has(key)) fail(key, "missing (required)");
  return get_int(key, 0);
}

double KeySource::require_double(const std::string& key) const {
  if (!has(key)) fail(key, "missing (required)");
  return get_double(key, 0.0);
}

namespace {

// ---- config.json ---------------------------------------------------------------------------

class JsonSource final : public KeySource {
 public:
  JsonSource(nlohmann::json object, std::string source, std::string prefix)
      : j_(std::move(object)), source_(std::move(source)), prefix_(std::move(prefix)) {
    if (j_.is_null()) j_ = nlohmann::json::object();
    if (!j_.is_object())
      throw ConfigError(fmt::format("{}: {}expected a JSON object, got {}", source_,
                                    prefix_.empty() ? "" : "key `" + prefix_ + "`: ", j_.dump()));
  }

  bool has(const std::string& key) const override { return j_.contains(key) && !j_.at(key).is_null(); }
  bool present(const std::string& key) const override { return j_.contains(key); }

  int64_t get_int(const std::string& key, int64_t fallback) const override {
    if (!has(key)) return fallback;
    const auto& v = j_.at(key);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::floor(d) == d && std::abs(d) < 9e15) return static_cast<int64_t>(d);
    }
    fail(key, "expected an integer");
  }
  double get_double(const std::string& key, double fallback) const override {
    if (!has(key)) return fallback;
    const auto& v = j_.at(key);
    if (!v.is_number()) fail(key, "expected a number");
    return v.get<double>();
  }
  bool get_bool(const std::string& key, bool fallback) const override {
    if (!has(key)) return fallback;
    const auto& v = j_.at(key);
    if (!v.is_boolean()) fail(key, "expected a bool (true or false)");
    return v.get<bool>();
  }
  std::string get_string(const std::string& key, const std::string& fallback) const override {
    if (!has(key)) return fallback;
    const auto& v = j_.at(key);
    if (!v.is_string()) fail(key, "expected a string");
    return v.get<std::string>();
  }
  std::vector<int64_t> get_int_list(const std::string& key, const std::vector<int64_t>& fallback) const override {
    if (!has(key)) return fallback;
    const auto& v = j_.at(key);
    if (v.is_number_integer()) return {v.get<int64_t>()};
    if (!v.is_array()) fail(key, "expected an integer or a list of integers");
    std::vector<int64_t> out;
    for (const auto& e : v) {
      if (!e.is_number_integer()) fail(key, "expected a list of integers");
      out.push_back(e.get<int64_t>());
    }
    return out;
  }
  std::vector<std::string> get_string_list(const std::string& key,
                                           const std::vector<std::string>& fallback) const override {
    if (!has(key)) return fallback;
    const auto& v = j_.at(key);
    if (v.is_string()) return {v.get<std::string>()};
    if (!v.is_array()) fail(key, "expected a list of strings");
    std::vector<std::string> out;
    for (const auto& e : v) {
      if (!e.is_string()) fail(key, "expected a list of strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  std::unique_ptr<KeySource> section(const std::string& key) const override {
    nlohmann::json sub = has(key) ? j_.at(key) : nlohmann::json::object();
    if (!sub.is_object()) fail(key, "expected a JSON object");
    return std::make_unique<JsonSource>(std::move(sub), source_, dotted(key));
  }
  [[noreturn]] void fail(const std::string& key, const std::string& constraint) const override {
    const std::string value = j_.contains(key) ? j_.at(key).dump() : std::string("(absent)");
    throw ConfigError(fmt::format("{}: key `{}` = {}: {}", source_, dotted(key), value, constraint));
  }
  void accept(const std::vector<std::string>&) const override {}
  void reject_unknown_keys() const override {}

 private:
  std::string dotted(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }
  nlohmann::json j_;
  std::string source_;
  std::string prefix_;
};

// ---- YAML model: section ------------------------------------------------------------------

class YamlSource final : public KeySource {
 public:
  explicit YamlSource(ConfigView view) : v_(std::move(view)) {}

  bool has(const std::string& key) const override { return v_.has(key); }
  bool present(const std::string& key) const override {
    const auto keys = v_.keys();
    return v_.has(key) || std::find(keys.begin(), keys.end(), key) != keys.end();
  }
  int64_t get_int(const std::string& key, int64_t fallback) const override {
    return has(key) ? v_.get<int64_t>(key, fallback) : mark(key, fallback);
  }
  double get_double(const std::string& key, double fallback) const override {
    return has(key) ? v_.get<double>(key, fallback) : mark(key, fallback);
  }
  bool get_bool(const std::string& key, bool fallback) const override {
    return has(key) ? v_.get<bool>(key, fallback) : mark(key, fallback);
  }
  std::string get_string(const std::string& key, const std::string& fallback) const override {
    return has(key) ? v_.get<std::string>(key, fallback) : mark(key, fallback);
  }
  std::vector<int64_t> get_int_list(const std::string& key, const std::vector<int64_t>& fallback) const override {
    if (!has(key)) return mark(key, fallback);
    try {
      return {v_.get<int64_t>(key, 0)};
    } catch (const ConfigError&) {
      return v_.get<std::vector<int64_t>>(key, fallback);
    }
  }
  std::vector<std::string> get_string_list(const std::string& key,
                                           const std::vector<std::string>& fallback) const override {
    if (!has(key)) return mark(key, fallback);
    try {
      return v_.get<std::vector<std::string>>(key, fallback);
    } catch (const ConfigError&) {
      return {v_.get<std::string>(key, "")};
    }
  }
  std::unique_ptr<KeySource> section(const std::string& key) const override {
    return std::make_unique<YamlSource>(v_.section(key));
  }
  [[noreturn]] void fail(const std::string& key, const std::string& constraint) const override {
    v_.check(false, key, constraint);
    throw ConfigError(constraint);  // not reached: check(false) throws
  }
  void accept(const std::vector<std::string>& keys) const override {
    for (const auto& k : keys) (void)v_.has(k);  // has() records the key as asked for
  }
  void reject_unknown_keys() const override { v_.reject_unknown_keys(); }

 private:
  // Absent keys are not written into the tree as defaults (ConfigView::get would): the
  // resolved YAML shows what the user wrote; config.json written from it carries every key.
  template <typename T>
  static T mark(const std::string&, const T& fallback) {
    return fallback;
  }
  ConfigView v_;
};

}  // namespace

std::unique_ptr<KeySource> json_source(const nlohmann::json& object, const std::string& source) {
  return std::make_unique<JsonSource>(object, source, "");
}

std::unique_ptr<KeySource> yaml_source(const ConfigView& view) {
  return std::make_unique<YamlSource>(view);
}

}  // namespace rlft::policy
