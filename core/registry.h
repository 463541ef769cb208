#pragma once
// Registry<Factory>: an open set of named variants (architectures, rewards, advantage
// estimators …). A value, filled by one visible register_builtin_…() per module; no static
// self-registration. Unknown names are errors that list the known ones.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <string>
#include <vector>

#include "core/error.h"

namespace rlft {

template <typename Factory>
class Registry {
 public:
  explicit Registry(std::string kind) : kind_(std::move(kind)) {}

  void add(const std::string& name, Factory factory) {
    RLFT_CHECK(!entries_.count(name), "{} '{}' is registered twice", kind_, name);
    entries_.emplace(name, std::move(factory));
  }
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  /// Throws rlft::Error "unknown <kind> 'x': known <kind>s are a, b, c".
  const Factory& get(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end())
      throw Error(fmt::format("unknown {} '{}': known {}s are {}", kind_, name, kind_, fmt::join(names(), ", ")));
    return it->second;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& kv : entries_) out.push_back(kv.first);
    return out;
  }
  const std::string& kind() const { return kind_; }

 private:
  std::string kind_;
  std::map<std::string, Factory> entries_;
};

}  // namespace rlft
