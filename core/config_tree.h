#pragma once
// The YAML tree behind ConfigView (core/config.h): nodes with their source positions, loaded
// from files with their includes, with `--set` overrides applied, and emitted back as YAML.
// Internal to core/config*.cpp.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/config.h"

namespace rlft::config_detail {

struct Node;

struct Entry {
  std::string key;
  SourceLoc key_loc;
  std::unique_ptr<Node> value;
};

struct Node {
  enum class Kind { kNull, kScalar, kMap, kSeq };
  Kind kind = Kind::kNull;
  std::string scalar;
  bool quoted = false;                     // a quoted scalar is always a string
  std::vector<Entry> map;                  // kMap, in file order
  std::vector<std::unique_ptr<Node>> seq;  // kSeq
  SourceLoc loc;
  std::set<std::string> asked;  // kMap: keys some getter asked for

  Entry* entry(const std::string& key) {
    for (auto& e : map)
      if (e.key == key) return &e;
    return nullptr;
  }
};

struct Tree {
  std::unique_ptr<Node> root;
  std::string file;
};

/// A value as an error message quotes it ("(missing)", the scalar, "{…}", "[…]").
std::string describe(const Node* n);
/// Throws ConfigError "loc: key = value: what" (key and value left out when empty/null).
[[noreturn]] void fail(const SourceLoc& loc, const std::string& key, const Node* value, const std::string& what);
/// A parsed YAML document as a tree; `file` and `path` locate its nodes in errors.
std::unique_ptr<Node> convert(const YAML::Node& y, const std::string& file, const std::string& path);
/// Loads `path` and its includes (`stack` holds the files being loaded, for cycles).
std::unique_ptr<Node> load_file(const std::string& path, std::vector<std::string>& stack);
/// "a.b.c" → {"a", "b", "c"}.
std::vector<std::string> split_dots(const std::string& key);
/// YAML 1.1 scalars as rlft reads them; false when `s` is not one.
bool parse_bool(const std::string& s, bool& out);
bool parse_int(const std::string& s, int64_t& out);
bool parse_double(const std::string& s, double& out);
/// Applies one `--set a.b.c=value` to the tree (typed like the value it replaces).
void apply_override(Tree& tree, const std::string& spec);
/// The subtree as YAML.
void emit(YAML::Emitter& out, const Node& n);

}  // namespace rlft::config_detail
