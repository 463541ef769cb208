#include "policy/checkpoint/config_json.h"

#include "core/error.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace rlft::checkpoint {

namespace {

// Integers written as 2.0 by some tools are integers; 2.5 is not.
bool integral(const nlohmann::json& v) {
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15;
}

template <typename T>
T convert(const nlohmann::json& v, const std::string& source, const std::string& key);

[[noreturn]] void wrong(const nlohmann::json& v, const std::string& source, const std::string& key,
                        const char* expected) {
  throw Error(fmt::format("{}: key `{}` = {}: expected {}", source, key, describe_json(v), expected));
}

template <>
bool convert<bool>(const nlohmann::json& v, const std::string& s, const std::string& k) {
  if (!v.is_boolean()) wrong(v, s, k, "true or false");
  return v.get<bool>();
}
template <>
int64_t convert<int64_t>(const nlohmann::json& v, const std::string& s, const std::string& k) {
  if (!integral(v)) wrong(v, s, k, "an integer");
  return v.is_number_float() ? static_cast<int64_t>(v.get<double>()) : v.get<int64_t>();
}
template <>
int convert<int>(const nlohmann::json& v, const std::string& s, const std::string& k) {
  const int64_t x = convert<int64_t>(v, s, k);
  if (x < INT32_MIN || x > INT32_MAX) wrong(v, s, k, "a 32-bit integer");
  return static_cast<int>(x);
}
template <>
double convert<double>(const nlohmann::json& v, const std::string& s, const std::string& k) {
  if (!v.is_number()) wrong(v, s, k, "a number");
  return v.get<double>();
}
template <>
std::string convert<std::string>(const nlohmann::json& v, const std::string& s, const std::string& k) {
  if (!v.is_string()) wrong(v, s, k, "a string");
  return v.get<std::string>();
}
template <>
nlohmann::json convert<nlohmann::json>(const nlohmann::json& v, const std::string&, const std::string&) {
  return v;
}

template <typename E>
std::vector<E> convert_list(const nlohmann::json& v, const std::string& s, const std::string& k, const char* what) {
  if (!v.is_array()) wrong(v, s, k, what);
  std::vector<E> out;
  for (size_t i = 0; i < v.size(); ++i) out.push_back(convert<E>(v[i], s, fmt::format("{}[{}]", k, i)));
  return out;
}
template <>
std::vector<int64_t> convert<std::vector<int64_t>>(const nlohmann::json& v, const std::string& s,
                                                   const std::string& k) {
  return convert_list<int64_t>(v, s, k, "a list of integers");
}
template <>
std::vector<double> convert<std::vector<double>>(const nlohmann::json& v, const std::string& s, const std::string& k) {
  return convert_list<double>(v, s, k, "a list of numbers");
}
template <>
std::vector<std::string> convert<std::vector<std::string>>(const nlohmann::json& v, const std::string& s,
                                                           const std::string& k) {
  return convert_list<std::string>(v, s, k, "a list of strings");
}

}  // namespace

std::string describe_json(const nlohmann::json& v) {
  auto clip = [](std::string s) { return s.size() > 80 ? s.substr(0, 77) + "..." : s; };
  if (v.is_string())  // (cutting may split a UTF-8 sequence: replace it rather than throw)
    return clip(nlohmann::json(v.get_ref<const std::string&>().substr(0, 80))
                    .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (!v.is_structured()) return v.dump();
  if (v.size() <= 16) {
    bool flat = true;
    for (const auto& e : v) flat &= !e.is_structured();
    if (flat) return clip(v.dump());
  }
  return fmt::format("{} of {} element{}", v.is_array() ? "an array" : "an object", v.size(), v.size() == 1 ? "" : "s");
}

HfConfig::HfConfig(nlohmann::json json, std::string source) : json_(std::move(json)), source_(std::move(source)) {
  RLFT_CHECK(json_.is_object(), "{}: a config must be a JSON object, got {}", source_, describe_json(json_));
}

HfConfig HfConfig::load(const std::string& path) {
  std::error_code ec;
  const std::string file = fs::is_directory(path, ec) ? (fs::path(path) / "config.json").string() : path;
  std::ifstream in(file, std::ios::binary);
  RLFT_CHECK(in, "{}: cannot open: {}", file, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", file, e.what()));
  }
  RLFT_CHECK(j.is_object(), "{}: expected a JSON object, got {}", file, describe_json(j));
  return HfConfig(std::move(j), file);
}

bool HfConfig::has(const std::string& key) const {
  return json_.contains(key) && !json_[key].is_null();
}

template <typename T>
T HfConfig::get(const std::string& key) const {
  RLFT_CHECK(has(key), "{}: key `{}`: missing (required)", source_, key);
  return convert<T>(json_[key], source_, key);
}

template <typename T>
T HfConfig::get(const std::string& key, const T& fallback) const {
  return has(key) ? convert<T>(json_[key], source_, key) : fallback;
}

#define RLFT_HF_CONFIG_INSTANTIATE(T)                    \
  template T HfConfig::get<T>(const std::string&) const; \
  template T HfConfig::get<T>(const std::string&, const T&) const;
RLFT_HF_CONFIG_INSTANTIATE(bool)
RLFT_HF_CONFIG_INSTANTIATE(int)
RLFT_HF_CONFIG_INSTANTIATE(int64_t)
RLFT_HF_CONFIG_INSTANTIATE(double)
RLFT_HF_CONFIG_INSTANTIATE(std::string)
RLFT_HF_CONFIG_INSTANTIATE(std::vector<int64_t>)
RLFT_HF_CONFIG_INSTANTIATE(std::vector<double>)
RLFT_HF_CONFIG_INSTANTIATE(std::vector<std::string>)
RLFT_HF_CONFIG_INSTANTIATE(nlohmann::json)
#undef RLFT_HF_CONFIG_INSTANTIATE

std::string format_config_json(const nlohmann::json& json) {
  return json.dump(2) + "\n";
}

std::string HfConfig::dump() const {
  return format_config_json(json_);
}

void HfConfig::save(const std::string& path) const {
  std::error_code ec;
  const std::string file = fs::is_directory(path, ec) ? (fs::path(path) / "config.json").string() : path;
  write_file_atomic(file, dump());
}

}  // namespace rlft::checkpoint
