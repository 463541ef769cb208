#include "core/config_tree.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <fmt/ranges.h>

#include "core/error.h"

namespace rlft {

std::string SourceLoc::str() const {
  if (line <= 0) return file;
  return fmt::format("{}:{}:{}", file, line, column);
}

namespace config_detail {

using Kind = Node::Kind;

std::string describe(const Node* n) {
  if (!n) return "(missing)";
  switch (n->kind) {
    case Kind::kNull:
      return "null";
    case Kind::kScalar:
      return n->scalar;
    case Kind::kMap:
      return "{…}";
    case Kind::kSeq:
      return "[…]";
  }
  return "";
}

[[noreturn]] void fail(const SourceLoc& loc, const std::string& key, const Node* value, const std::string& what) {
  if (key.empty()) throw ConfigError(fmt::format("{}: {}", loc.str(), what));
  if (!value) throw ConfigError(fmt::format("{}: {}: {}", loc.str(), key, what));
  throw ConfigError(fmt::format("{}: {} = {}: {}", loc.str(), key, describe(value), what));
}

std::unique_ptr<Node> convert(const YAML::Node& y, const std::string& file, const std::string& path) {
  auto n = std::make_unique<Node>();
  const YAML::Mark m = y.Mark();
  n->loc = {file, m.line >= 0 ? m.line + 1 : 0, m.column >= 0 ? m.column + 1 : 0};
  switch (y.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      n->kind = Kind::kNull;
      break;
    case YAML::NodeType::Scalar:
      n->kind = Kind::kScalar;
      n->scalar = y.Scalar();
      n->quoted = y.Tag() == "!";
      break;
    case YAML::NodeType::Sequence:
      n->kind = Kind::kSeq;
      for (std::size_t i = 0; i < y.size(); ++i) n->seq.push_back(convert(y[i], file, fmt::format("{}[{}]", path, i)));
      break;
    case YAML::NodeType::Map:
      n->kind = Kind::kMap;
      for (auto it = y.begin(); it != y.end(); ++it) {
        const YAML::Mark km = it->first.Mark();
        SourceLoc kloc{file, km.line + 1, km.column + 1};
        if (!it->first.IsScalar()) fail(kloc, path, nullptr, "a key must be a plain name");
        std::string key = it->first.Scalar();
        const std::string dotted = path.empty() ? key : path + "." + key;
        if (n->entry(key)) fail(kloc, dotted, nullptr, "duplicate key");
        n->map.push_back({key, kloc, convert(it->second, file, dotted)});
      }
      break;
  }
  return n;
}

/// Merges `over` into `base`: maps key by key, anything else replaces.
void merge(Node& base, std::unique_ptr<Node> over) {
  if (base.kind != Kind::kMap || over->kind != Kind::kMap) {
    base = std::move(*over);
    return;
  }
  for (auto& e : over->map) {
    if (Entry* b = base.entry(e.key)) {
      b->key_loc = e.key_loc;
      merge(*b->value, std::move(e.value));
    } else {
      base.map.push_back(std::move(e));
    }
  }
  base.loc = over->loc;
}

std::unique_ptr<Node> load_file(const std::string& path, std::vector<std::string>& stack) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string canonical = fs::weakly_canonical(path, ec).string();
  if (std::find(stack.begin(), stack.end(), canonical) != stack.end())
    throw ConfigError(fmt::format("{}: include cycle: {} includes itself", path, path));
  std::ifstream in(path);
  if (!fs::exists(path, ec)) throw ConfigError(fmt::format("config file '{}' not found", path));
  if (!in) throw ConfigError(fmt::format("config file '{}' cannot be read", path));
  std::stringstream ss;
  ss << in.rdbuf();
  YAML::Node y;
  try {
    y = YAML::Load(ss.str());
  } catch (const YAML::ParserException& e) {
    throw ConfigError(fmt::format("{}:{}:{}: YAML syntax error: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  auto node = convert(y, path, "");
  if (node->kind == Kind::kNull) node->kind = Kind::kMap;  // an empty file is an empty config
  if (node->kind != Kind::kMap) fail(node->loc, "", nullptr, "a config file must be a map of keys to values");

  // Resolve `include:` first; the including file then overrides what it includes.
  auto inc = std::find_if(node->map.begin(), node->map.end(), [](const Entry& e) { return e.key == "include"; });
  if (inc == node->map.end()) return node;
  std::vector<const Node*> paths;
  const Node* iv = inc->value.get();
  if (iv->kind == Kind::kScalar)
    paths.push_back(iv);
  else if (iv->kind == Kind::kSeq)
    for (auto& s : iv->seq) paths.push_back(s.get());
  else
    fail(iv->loc, "include", iv, "expected a file path or a list of file paths");
  auto base = std::make_unique<Node>();
  base->kind = Kind::kMap;
  base->loc = node->loc;
  stack.push_back(canonical);
  for (const Node* p : paths) {
    if (p->kind != Kind::kScalar) fail(p->loc, "include", p, "expected a file path");
    fs::path target = fs::path(p->scalar);
    if (target.is_relative()) target = fs::path(path).parent_path() / target;
    if (!fs::exists(target, ec))
      fail(p->loc, "include", p, fmt::format("included file '{}' not found", target.string()));
    merge(*base, load_file(target.string(), stack));
  }
  stack.pop_back();
  std::unique_ptr<Node> own = std::move(node);
  own->map.erase(std::find_if(own->map.begin(), own->map.end(), [](const Entry& e) { return e.key == "include"; }));
  merge(*base, std::move(own));
  return base;
}

std::vector<std::string> split_dots(const std::string& key) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : key) {
    if (c == '.') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

enum class ScalarType { kBool, kInt, kFloat, kString };

bool parse_bool(const std::string& s, bool& out) {
  static const char* kTrue[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
  static const char* kFalse[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
  for (const char* t : kTrue)
    if (s == t) return out = true, true;
  for (const char* f : kFalse)
    if (s == f) return out = false, true;
  return false;
}

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  const char* b = s.data();
  if (*b == '+') ++b;
  auto r = std::from_chars(b, s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  if (s == ".inf" || s == ".Inf" || s == "+.inf") return out = HUGE_VAL, true;
  if (s == "-.inf" || s == "-.Inf") return out = -HUGE_VAL, true;
  if (s == ".nan" || s == ".NaN") return out = std::nan(""), true;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE) return false;
  // strtod accepts "inf", "nan" and hex; YAML does not.
  for (char c : s)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+'))
      return false;
  return true;
}

ScalarType classify(const Node& n) {
  if (n.quoted) return ScalarType::kString;
  bool b;
  int64_t i;
  double d;
  if (parse_bool(n.scalar, b)) return ScalarType::kBool;
  if (parse_int(n.scalar, i)) return ScalarType::kInt;
  if (parse_double(n.scalar, d)) return ScalarType::kFloat;
  return ScalarType::kString;
}

const char* type_name(ScalarType t) {
  switch (t) {
    case ScalarType::kBool:
      return "a bool (true/false)";
    case ScalarType::kInt:
      return "an integer";
    case ScalarType::kFloat:
      return "a number";
    case ScalarType::kString:
      return "a string";
  }
  return "";
}

void apply_override(Tree& tree, const std::string& spec) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(fmt::format("--set {}: expected KEY=VALUE with a dotted key, e.g. train.lr=1e-5", spec));
  const std::string key = spec.substr(0, eq);
  const std::string text = spec.substr(eq + 1);
  std::unique_ptr<Node> value;
  try {
    value = convert(YAML::Load(text), "--set", key);
  } catch (const YAML::Exception&) {
    value = std::make_unique<Node>();
    value->kind = Kind::kScalar;
    value->scalar = text;
  }
  if (value->kind == Kind::kNull && !text.empty() && text != "null" && text != "~") {
    value->kind = Kind::kScalar;
    value->scalar = text;
  }
  const SourceLoc set_loc{"--set", 0, 0};
  auto set_locs = [&](auto&& self, Node& n) -> void {
    n.loc = set_loc;
    for (auto& e : n.map) e.key_loc = set_loc, self(self, *e.value);
    for (auto& s : n.seq) self(self, *s);
  };
  set_locs(set_locs, *value);

  const auto parts = split_dots(key);
  Node* cur = tree.root.get();
  std::string walked;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    walked += (walked.empty() ? "" : ".") + parts[i];
    if (parts[i].empty()) throw ConfigError(fmt::format("--set {}: empty segment in key '{}'", spec, key));
    Entry* e = cur->entry(parts[i]);
    if (!e) {
      auto fresh = std::make_unique<Node>();
      fresh->kind = Kind::kMap;
      fresh->loc = set_loc;
      cur->map.push_back({parts[i], set_loc, std::move(fresh)});
      e = &cur->map.back();
    }
    if (e->value->kind == Kind::kNull) e->value->kind = Kind::kMap;
    if (e->value->kind != Kind::kMap)
      throw ConfigError(fmt::format("--set {}: {} = {} is a value, not a section ({})", spec, walked,
                                    describe(e->value.get()), e->value->loc.str()));
    cur = e->value.get();
  }
  Entry* e = cur->entry(parts.back());
  if (!e) {
    cur->map.push_back({parts.back(), set_loc, std::move(value)});
    return;
  }
  // The new value must have the type of the one it replaces.
  const Node& old = *e->value;
  const std::string where = fmt::format("--set {}: {} replaces {} from {}", spec, key, describe(&old), old.loc.str());
  if (old.kind == Kind::kScalar) {
    const ScalarType want = classify(old);
    if (value->kind != Kind::kScalar) throw ConfigError(fmt::format("{}: expected {}", where, type_name(want)));
    const ScalarType got = classify(*value);
    const bool ok =
        want == ScalarType::kString || want == got || (want == ScalarType::kFloat && got == ScalarType::kInt);
    if (!ok) throw ConfigError(fmt::format("{}: expected {}, got '{}'", where, type_name(want), value->scalar));
    if (want == ScalarType::kString) value->quoted = true;
  } else if (old.kind == Kind::kSeq && value->kind != Kind::kSeq) {
    throw ConfigError(fmt::format("{}: expected a list, e.g. [a, b]", where));
  } else if (old.kind == Kind::kMap && value->kind != Kind::kMap) {
    throw ConfigError(fmt::format("{}: expected a section (set its keys one by one: {}.KEY=VALUE)", where, key));
  }
  e->value = std::move(value);
}

void emit(YAML::Emitter& out, const Node& n) {
  switch (n.kind) {
    case Kind::kNull:
      out << YAML::Null;
      break;
    case Kind::kScalar:
      if (n.quoted)
        out << YAML::DoubleQuoted << n.scalar;
      else
        out << n.scalar;
      break;
    case Kind::kSeq:
      out << YAML::BeginSeq;
      for (auto& s : n.seq) emit(out, *s);
      out << YAML::EndSeq;
      break;
    case Kind::kMap:
      out << YAML::BeginMap;
      for (auto& e : n.map) {
        out << YAML::Key << e.key << YAML::Value;
        emit(out, *e.value);
      }
      out << YAML::EndMap;
      break;
  }
}

}  // namespace config_detail
}  // namespace rlft
