#pragma once
// ConfigView: the only door to YAML. A resolved configuration tree (file + includes +
// `--set` overrides) with typed getters, dotted paths, consumed-key tracking and errors that
// carry `file:line:column`, the dotted key, the value and the constraint:
//
//   configs/grpo.yaml:14:7: train.lr = fast: expected a number
//
// Includes: a top-level `include:` (a path or a list of paths, relative to the including
// file) is loaded first, then the including file's keys are merged over it (maps merge key by
// key; scalars and lists replace).
//
// Overrides: `--set a.b.c=value` parses `value` as YAML. Where the key exists it must have
// the type of the value it replaces (an integer stays an integer, a number a number, a bool
// a bool, a list a list); a new key is allowed and checked like any other by
// reject_unknown_keys(), which names "--set" as its source.
//
// Options: each module's `XxxOptions` struct reads its own section in a static
// `from_config(const ConfigView&)` (its field initialisers are the getters' fallbacks, the
// only defaults) and checks itself in `void validate() const`, which throws OptionError
// naming the field. read_options<XxxOptions>(section) does both and reports a failed field
// at its own file:line:column, e.g.
//
//   configs/default/grpo.yaml:36:14: grpo.loss.kl_beta = -1: must be >= 0
//
// Unknown keys: every getter records the key it asked for, present or not. After the
// options are parsed, reject_unknown_keys() fails on any key that nobody asked for, with a
// "did you mean" among the keys that were asked for at the same level.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace rlft {

namespace config_detail {
struct Node;
struct Tree;
}  // namespace config_detail

/// Where a value came from: a file position (1-based) or "--set".
struct SourceLoc {
  std::string file;         ///< path as the user gave it, or "--set"
  int line = 0;             ///< 1-based; 0 when unknown
  int column = 0;           ///< 1-based; 0 when unknown
  std::string str() const;  ///< "file:line:column" (or "file" when no position)
};

class ConfigView {
 public:
  /// Loads `path` with its includes, then applies `overrides` ("a.b.c=value").
  /// Throws ConfigError for a missing file, a YAML syntax error (with line and column),
  /// an include cycle, or a bad override.
  static ConfigView load(const std::string& path, const std::vector<std::string>& overrides = {});
  /// The same from YAML text; `name` stands for the file name in errors.
  static ConfigView parse(const std::string& yaml, const std::string& name = "<string>",
                          const std::vector<std::string>& overrides = {});

  /// The view of a sub-map (dotted path). A missing section is an empty one: getters then
  /// return their defaults. A section that is present but not a map is a ConfigError.
  /// Defaults that getters return are recorded in the tree, so to_yaml() shows every value
  /// the run used.
  ConfigView section(const std::string& key) const;
  /// True when `key` (dotted) is present (and not null).
  bool has(const std::string& key) const;

  /// Typed getters. Supported T: bool, int, int64_t, double, std::string,
  /// std::vector<std::string>, std::vector<int64_t>, std::vector<double>.
  template <typename T>
  T get(const std::string& key, const T& fallback) const;
  template <typename T>
  T get_required(const std::string& key) const;
  /// get<std::string>(key, fallback) turned into a value by `parse` (a name into an enum);
  /// an rlft::Error that `parse` throws (an unknown name) becomes a ConfigError at `key`.
  template <typename Parse>
  auto get_parsed(const std::string& key, const std::string& fallback, Parse&& parse) const {
    const std::string name = get<std::string>(key, fallback);
    try {
      return parse(name);
    } catch (const ConfigError&) {
      throw;
    } catch (const Error& e) {
      check(false, key, e.what());
      throw;  // not reached
    }
  }
  /// Keys of this map in file order (marks none of them as used).
  std::vector<std::string> keys() const;

  /// Throws ConfigError "loc: key = value: constraint" unless `ok`.
  void check(bool ok, const std::string& key, const std::string& constraint) const;
  /// Throws the ConfigError of an options struct's failed validate(): `error.key()` is taken
  /// relative to this view and located as check() locates a key (an empty key names the view).
  [[noreturn]] void reject(const OptionError& error) const;
  /// Throws ConfigError naming the first key that no getter asked for, with a suggestion.
  void reject_unknown_keys() const;

  /// The dotted path of this view ("" for the root).
  const std::string& path() const { return prefix_; }
  /// The resolved configuration as YAML (includes merged, overrides applied).
  std::string to_yaml() const;
  /// A hash of the resolved YAML (hex), equal across processes for equal configs. Keys in
  /// `ignore` (dotted; a section ignores all it holds) do not count.
  std::string hash(const std::vector<std::string>& ignore = {}) const;
  /// The run's hash: what ranks compare at start and --resume checks. Leaves out what may
  /// change without changing the run: run.log_level, run.threads, distributed.timeout_s, and
  /// the memory knobs (`memory:`, grpo.micro_batch_tokens).
  std::string run_hash() const;
  /// The source position of `key` (or of this view when `key` is empty).
  SourceLoc location(const std::string& key = "") const;
  /// The main file this configuration was loaded from ("<string>" for parse()).
  const std::string& file() const;

 private:
  ConfigView(std::shared_ptr<config_detail::Tree> tree, config_detail::Node* node, std::string prefix);
  config_detail::Node* find(const std::string& key, bool mark_used, bool create) const;
  std::string full_key(const std::string& key) const;

  std::shared_ptr<config_detail::Tree> tree_;
  config_detail::Node* node_;  // owned by tree_; may be null for a missing section
  std::string prefix_;
};

/// The one way an options struct is read from YAML: `Options::from_config(section)` reads
/// its keys, then `validate()` checks the result; a failed field is a ConfigError at that
/// field's own position ("(default)" when the file does not set it, "--set" when an
/// override did).
template <typename Options>
Options read_options(const ConfigView& section) {
  Options options = Options::from_config(section);
  try {
    options.validate();
  } catch (const OptionError& e) {
    section.reject(e);
  }
  return options;
}

/// Edit distance, for "did you mean" suggestions.
std::size_t edit_distance(const std::string& a, const std::string& b);
/// The closest of `candidates` to `word` when it is close enough to be a likely typo.
std::optional<std::string> closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace rlft
