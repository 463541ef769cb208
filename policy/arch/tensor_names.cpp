#include "policy/arch/tensor_names.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"

namespace rlft::policy {

namespace tensor_names_detail {  // named, not anonymous: the files of a unity batch share one translation unit

bool is_number(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// "model.layers.12.mlp.experts.3.w1.weight" -> "model.layers.#.mlp.experts.#.w1.weight", {"12", "3"}.
std::string pattern_of(const std::string& name, std::vector<std::string>* numbers) {
  std::string out;
  size_t start = 0;
  while (true) {
    const size_t dot = name.find('.', start);
    const std::string part = name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (is_number(part)) {
      out += '#';
      if (numbers) numbers->push_back(part);
    } else {
      out += part;
    }
    if (dot == std::string::npos) return out;
    out += '.';
    start = dot + 1;
  }
}

// The pattern with its "#" segments replaced by `numbers`, in order.
std::string fill(const std::string& pattern, const std::vector<std::string>& numbers) {
  std::string out;
  size_t next = 0, start = 0;
  while (true) {
    const size_t dot = pattern.find('.', start);
    const std::string part = pattern.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    out += part == "#" ? numbers.at(next++) : part;
    if (dot == std::string::npos) return out;
    out += '.';
    start = dot + 1;
  }
}

size_t count_numbers(const std::string& pattern) {
  const std::string p = pattern_of(pattern, nullptr);  // a literal number counts as "#"
  return static_cast<size_t>(std::count(p.begin(), p.end(), '#'));
}

// `name` matched against the patterns of `index`, the matching row's other side filled in.
std::string translate(const std::string& name, const std::unordered_map<std::string, size_t>& index,
                      const std::vector<TensorName>& rows, std::string TensorName::*other, const char* what,
                      const char* missing) {
  std::vector<std::string> numbers;
  const auto it = index.find(pattern_of(name, &numbers));
  RLFT_CHECK(it != index.end(), "{} `{}` has no {} (no row of the architecture's tensor-name table matches it)", what,
             name, missing);
  return fill(rows[it->second].*other, numbers);
}

}  // namespace tensor_names_detail

TensorNames::TensorNames(const std::vector<TensorName>& rows) {
  add(rows);
}

void TensorNames::add(const std::vector<TensorName>& rows) {
  using namespace tensor_names_detail;
  for (const auto& row : rows) {
    RLFT_CHECK(count_numbers(row.module) == count_numbers(row.checkpoint),
               "tensor names: `{}` -> `{}`: both sides must hold the same count of numbered segments", row.module,
               row.checkpoint);
    const std::string m = pattern_of(row.module, nullptr), c = pattern_of(row.checkpoint, nullptr);
    RLFT_CHECK(!by_module_.count(m), "tensor names: module path `{}` has two rows", row.module);
    RLFT_CHECK(!by_checkpoint_.count(c), "tensor names: checkpoint name `{}` has two rows", row.checkpoint);
    by_module_.emplace(m, rows_.size());
    by_checkpoint_.emplace(c, rows_.size());
    rows_.push_back({m, c});
  }
}

std::string TensorNames::to_checkpoint(const std::string& module_name) const {
  return tensor_names_detail::translate(module_name, by_module_, rows_, &TensorName::checkpoint, "module tensor",
                                        "checkpoint name");
}

std::string TensorNames::to_module(const std::string& checkpoint_name) const {
  return tensor_names_detail::translate(checkpoint_name, by_checkpoint_, rows_, &TensorName::module,
                                        "checkpoint tensor", "module path");
}

bool TensorNames::has_checkpoint_name(const std::string& checkpoint_name) const {
  return by_checkpoint_.count(tensor_names_detail::pattern_of(checkpoint_name, nullptr)) > 0;
}

}  // namespace rlft::policy
