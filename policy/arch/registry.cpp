// The architecture registry and the list of built-in architectures.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "policy/arch/arch.h"

namespace rlft::policy {

void ArchRegistry::add(const Architecture& arch) {
  by_name_.add(arch.name, arch);
  RLFT_CHECK(!type_to_name_.count(arch.model_type), "model_type '{}' is registered twice", arch.model_type);
  type_to_name_[arch.model_type] = arch.name;
}

bool ArchRegistry::contains(const std::string& name) const {
  return by_name_.contains(name) || type_to_name_.count(name) > 0;
}

const Architecture& ArchRegistry::get(const std::string& name) const {
  auto it = type_to_name_.find(name);
  if (it != type_to_name_.end()) return by_name_.get(it->second);
  if (!by_name_.contains(name)) {
    std::vector<std::string> known;
    for (const auto& [type, arch] : type_to_name_) known.push_back(fmt::format("{} ({})", arch, type));
    throw Error(fmt::format("unknown architecture '{}': known architectures are {}", name, fmt::join(known, ", ")));
  }
  return by_name_.get(name);
}

void register_builtin_architectures(ArchRegistry& registry) {
  register_deepseek_v3(registry);
  register_qwen2_moe(registry);
  register_qwen3_moe(registry);
  register_dense(registry);
}

ArchRegistry builtin_architectures() {
  ArchRegistry r;
  register_builtin_architectures(r);
  return r;
}

}  // namespace rlft::policy
