#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <functional>

#include <fmt/ranges.h>

#include "core/config_tree.h"
#include "core/error.h"

namespace rlft {

using config_detail::Entry;
using config_detail::Node;
using config_detail::Tree;
using Kind = Node::Kind;
using config_detail::apply_override;
using config_detail::convert;
using config_detail::emit;
using config_detail::fail;
using config_detail::load_file;
using config_detail::parse_bool;
using config_detail::parse_double;
using config_detail::parse_int;
using config_detail::split_dots;

namespace {

template <typename T>
T convert_scalar(const Node& n, const std::string& key);

template <>
std::string convert_scalar<std::string>(const Node& n, const std::string& key) {
  if (n.kind != Kind::kScalar) fail(n.loc, key, &n, "expected a string");
  return n.scalar;
}
template <>
bool convert_scalar<bool>(const Node& n, const std::string& key) {
  bool b = false;
  if (n.kind != Kind::kScalar || n.quoted || !parse_bool(n.scalar, b))
    fail(n.loc, key, &n, "expected a bool (true or false)");
  return b;
}
template <>
int64_t convert_scalar<int64_t>(const Node& n, const std::string& key) {
  int64_t v = 0;
  if (n.kind != Kind::kScalar || n.quoted || !parse_int(n.scalar, v)) fail(n.loc, key, &n, "expected an integer");
  return v;
}
template <>
int convert_scalar<int>(const Node& n, const std::string& key) {
  const int64_t v = convert_scalar<int64_t>(n, key);
  if (v < INT32_MIN || v > INT32_MAX) fail(n.loc, key, &n, "expected an integer in 32-bit range");
  return static_cast<int>(v);
}
template <>
double convert_scalar<double>(const Node& n, const std::string& key) {
  double v = 0;
  if (n.kind != Kind::kScalar || n.quoted || !parse_double(n.scalar, v)) fail(n.loc, key, &n, "expected a number");
  return v;
}

template <typename T>
struct Converter {
  static T run(const Node& n, const std::string& key) { return convert_scalar<T>(n, key); }
};
template <typename E>
struct Converter<std::vector<E>> {
  static std::vector<E> run(const Node& n, const std::string& key) {
    if (n.kind == Kind::kScalar && !n.quoted && n.scalar.empty()) return {};
    if (n.kind != Kind::kSeq) fail(n.loc, key, &n, "expected a list, e.g. [a, b]");
    std::vector<E> out;
    for (std::size_t i = 0; i < n.seq.size(); ++i)
      out.push_back(convert_scalar<E>(*n.seq[i], fmt::format("{}[{}]", key, i)));
    return out;
  }
};

template <typename T>
std::string scalar_text(const T& v) {
  if constexpr (std::is_same_v<T, bool>)
    return v ? "true" : "false";
  else if constexpr (std::is_same_v<T, double>) {
    std::string t = fmt::format("{}", v);
    if (t.find_first_of(".eEn") == std::string::npos) t += ".0";  // keep it a float when re-read
    return t;
  } else if constexpr (std::is_same_v<T, std::string>)
    return v;
  else
    return fmt::format("{}", v);
}

template <typename T>
struct Materialize {
  static void run(Node& n, const T& v) {
    n.kind = Kind::kScalar;
    n.scalar = scalar_text(v);
    n.quoted = std::is_same_v<T, std::string>;
  }
};
template <typename E>
struct Materialize<std::vector<E>> {
  static void run(Node& n, const std::vector<E>& v) {
    n.kind = Kind::kSeq;
    for (const auto& x : v) {
      auto c = std::make_unique<Node>();
      c->loc = n.loc;
      Materialize<E>::run(*c, x);
      n.seq.push_back(std::move(c));
    }
  }
};

}  // namespace

ConfigView::ConfigView(std::shared_ptr<Tree> tree, Node* node, std::string prefix)
    : tree_(std::move(tree)), node_(node), prefix_(std::move(prefix)) {}

ConfigView ConfigView::load(const std::string& path, const std::vector<std::string>& overrides) {
  auto tree = std::make_shared<Tree>();
  tree->file = path;
  std::vector<std::string> stack;
  tree->root = load_file(path, stack);
  for (const auto& o : overrides) apply_override(*tree, o);
  Node* root = tree->root.get();
  return ConfigView(std::move(tree), root, "");
}

ConfigView ConfigView::parse(const std::string& yaml, const std::string& name,
                             const std::vector<std::string>& overrides) {
  auto tree = std::make_shared<Tree>();
  tree->file = name;
  try {
    tree->root = convert(YAML::Load(yaml), name, "");
  } catch (const YAML::ParserException& e) {
    throw ConfigError(fmt::format("{}:{}:{}: YAML syntax error: {}", name, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  if (tree->root->kind == Kind::kNull) tree->root->kind = Kind::kMap;
  if (tree->root->kind != Kind::kMap) fail(tree->root->loc, "", nullptr, "a config must be a map of keys to values");
  for (const auto& o : overrides) apply_override(*tree, o);
  Node* root = tree->root.get();
  return ConfigView(std::move(tree), root, "");
}

std::string ConfigView::full_key(const std::string& key) const {
  if (prefix_.empty()) return key;
  if (key.empty()) return prefix_;
  return prefix_ + "." + key;
}

Node* ConfigView::find(const std::string& key, bool mark_used, bool create) const {
  Node* cur = node_;
  std::string walked = prefix_;
  for (const auto& part : split_dots(key)) {
    if (!cur) return nullptr;
    if (create && cur->kind == Kind::kNull) cur->kind = Kind::kMap;
    if (cur->kind != Kind::kMap) {
      if (cur->kind != Kind::kNull) fail(cur->loc, walked, cur, "expected a section (a map of keys)");
      return nullptr;
    }
    if (mark_used) cur->asked.insert(part);
    Entry* e = cur->entry(part);
    walked = walked.empty() ? part : walked + "." + part;
    if (!e) {
      if (!create) return nullptr;
      auto fresh = std::make_unique<Node>();
      fresh->loc = {"(default)", 0, 0};
      cur->map.push_back({part, fresh->loc, std::move(fresh)});
      e = &cur->map.back();
    }
    cur = e->value.get();
  }
  return cur;
}

ConfigView ConfigView::section(const std::string& key) const {
  Node* n = find(key, true, /*create=*/true);
  if (n && n->kind == Kind::kNull) n->kind = Kind::kMap;
  if (n && n->kind != Kind::kMap) fail(n->loc, full_key(key), n, "expected a section (a map of keys)");
  return ConfigView(tree_, n, full_key(key));
}

bool ConfigView::has(const std::string& key) const {
  const Node* n = find(key, true, false);
  return n && n->kind != Kind::kNull;
}

template <typename T>
T ConfigView::get(const std::string& key, const T& fallback) const {
  Node* n = find(key, true, /*create=*/true);
  if (!n) return fallback;
  if (n->kind == Kind::kNull) {
    // Record the default in the tree, so the resolved config (to_yaml, the stored run
    // snapshot, the hash ranks compare) shows every value the run used.
    Materialize<T>::run(*n, fallback);
    return fallback;
  }
  return Converter<T>::run(*n, full_key(key));
}

template <typename T>
T ConfigView::get_required(const std::string& key) const {
  const Node* n = find(key, true, false);
  if (!n || n->kind == Kind::kNull) {
    const SourceLoc loc = node_ ? node_->loc : SourceLoc{tree_->file, 0, 0};
    throw ConfigError(fmt::format("{}: {}: required key is missing", loc.str(), full_key(key)));
  }
  return Converter<T>::run(*n, full_key(key));
}

#define RLFT_CONFIG_INSTANTIATE(T)                                   \
  template T ConfigView::get<T>(const std::string&, const T&) const; \
  template T ConfigView::get_required<T>(const std::string&) const;
RLFT_CONFIG_INSTANTIATE(bool)
RLFT_CONFIG_INSTANTIATE(int)
RLFT_CONFIG_INSTANTIATE(int64_t)
RLFT_CONFIG_INSTANTIATE(double)
RLFT_CONFIG_INSTANTIATE(std::string)
RLFT_CONFIG_INSTANTIATE(std::vector<std::string>)
RLFT_CONFIG_INSTANTIATE(std::vector<int64_t>)
RLFT_CONFIG_INSTANTIATE(std::vector<double>)
#undef RLFT_CONFIG_INSTANTIATE

std::vector<std::string> ConfigView::keys() const {
  std::vector<std::string> out;
  if (node_ && node_->kind == Kind::kMap)
    for (auto& e : node_->map) out.push_back(e.key);
  return out;
}

void ConfigView::check(bool ok, const std::string& key, const std::string& constraint) const {
  if (ok) return;
  const Node* n = find(key, false, false);
  const SourceLoc loc = n ? n->loc : (node_ ? node_->loc : SourceLoc{tree_->file, 0, 0});
  if (!n) throw ConfigError(fmt::format("{}: {} (default): {}", loc.str(), full_key(key), constraint));
  fail(loc, full_key(key), n, constraint);
}

void ConfigView::reject(const OptionError& error) const {
  const SourceLoc here = node_ ? node_->loc : SourceLoc{tree_->file, 0, 0};
  if (error.key().empty()) {
    // The section as a whole: at its own position, else (a section the file lacks) the file.
    const std::string where = here.line > 0 ? here.str() : tree_->file;
    if (prefix_.empty()) throw ConfigError(fmt::format("{}: {}", where, error.constraint()));
    throw ConfigError(fmt::format("{}: {}: {}", where, prefix_, error.constraint()));
  }
  const Node* n = find(error.key(), false, false);
  // A field no getter reads (set in code, not in YAML) has no position of its own.
  if (!n)
    throw ConfigError(
        fmt::format("{}: {} = {}: {}", here.str(), full_key(error.key()), error.value(), error.constraint()));
  fail(n->loc, full_key(error.key()), n, error.constraint());
}

void ConfigView::reject_unknown_keys() const {
  auto walk = [&](auto&& self, const Node& n, const std::string& path) -> void {
    if (n.kind == Kind::kSeq) {
      for (std::size_t i = 0; i < n.seq.size(); ++i) self(self, *n.seq[i], fmt::format("{}[{}]", path, i));
      return;
    }
    if (n.kind != Kind::kMap) return;
    for (const auto& e : n.map) {
      const std::string dotted = path.empty() ? e.key : path + "." + e.key;
      if (!n.asked.count(e.key)) {
        std::vector<std::string> known(n.asked.begin(), n.asked.end());
        std::string msg = "unknown key";
        if (auto s = closest_match(e.key, known))
          msg += fmt::format(" (did you mean '{}'?)", *s);
        else if (!known.empty())
          msg += fmt::format(" (known keys here: {})", fmt::join(known, ", "));
        fail(e.key_loc, dotted, e.value.get(), msg);
      }
      self(self, *e.value, dotted);
    }
  };
  if (node_) walk(walk, *node_, prefix_);
}

std::string ConfigView::to_yaml() const {
  YAML::Emitter out;
  if (node_) emit(out, *node_);
  return std::string(out.c_str()) + "\n";
}

std::string ConfigView::hash(const std::vector<std::string>& ignore) const {
  std::string text = to_yaml();
  if (!ignore.empty()) {
    // Handles passed by value (yaml-cpp's Node::operator= would rebind the tree's nodes).
    const std::function<void(YAML::Node, const std::string&)> drop = [&drop](YAML::Node n, const std::string& k) {
      if (!n.IsMap()) return;
      const auto dot = k.find('.');
      if (dot == std::string::npos) {
        n.remove(k);
      } else if (n[k.substr(0, dot)]) {
        drop(n[k.substr(0, dot)], k.substr(dot + 1));
      }
    };
    YAML::Node root = YAML::Load(text);
    for (const auto& key : ignore) drop(root, key);
    YAML::Emitter out;
    out << root;
    text = out.c_str();
  }
  uint64_t h = 1469598103934665603ull;  // FNV-1a, 64-bit
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return fmt::format("{:016x}", h);
}

std::string ConfigView::run_hash() const {
  // Memory knobs change how a step is computed, not what: a run that ran out of memory may
  // be resumed with smaller micro-batches or activation checkpointing. Rollout ranks change
  // where groups are sampled, not which: a run may resume with another split of its ranks.
  return hash({"run.log_level", "run.threads", "distributed.timeout_s", "distributed.rollout_ranks", "memory",
               "grpo.micro_batch_tokens"});
}

SourceLoc ConfigView::location(const std::string& key) const {
  const Node* n = key.empty() ? node_ : find(key, false, false);
  if (n) return n->loc;
  return node_ ? node_->loc : SourceLoc{tree_->file, 0, 0};
}

const std::string& ConfigView::file() const {
  return tree_->file;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::optional<std::string> closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  std::size_t best_d = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

}  // namespace rlft
