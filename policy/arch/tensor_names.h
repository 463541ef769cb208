#pragma once
// TensorNames: an architecture's table from rlft's module paths (the keys of
// named_parameters() / named_buffers()) to the checkpoint's tensor names, as llama.cpp keeps
// a name map per architecture. The checkpoint reader and writer (policy/model_io.cpp) go
// through it, so an architecture whose checkpoints use other names (Mixtral's
// block_sparse_moe.experts.{e}.w1) needs only its own rows.
//
// A row is a pair of patterns in which a segment "#" stands for a number (a layer, an
// expert); both sides hold the same count of "#", matched in order:
//
//   {"model.layers.#.mlp.experts.#.gate_proj.weight", "model.layers.#.block_sparse_moe.experts.#.w1.weight"}
//
// Every tensor of a model must match a row; two rows may not share a side.

#include <string>
#include <unordered_map>
#include <vector>

namespace rlft::policy {

struct TensorName {
  std::string module;      ///< rlft's module path pattern, "model.layers.#.mlp.gate.weight"
  std::string checkpoint;  ///< the checkpoint's tensor name pattern
};

class TensorNames {
 public:
  TensorNames() = default;
  /// Throws rlft::Error for a row whose sides differ in their count of "#", or a side that
  /// two rows share.
  explicit TensorNames(const std::vector<TensorName>& rows);
  /// Appends rows (same checks).
  void add(const std::vector<TensorName>& rows);

  /// The checkpoint name of the module tensor `module_name`. Throws rlft::Error naming it
  /// when no row matches.
  std::string to_checkpoint(const std::string& module_name) const;
  /// The module path of the checkpoint tensor `checkpoint_name`. Throws rlft::Error naming
  /// it when no row matches.
  std::string to_module(const std::string& checkpoint_name) const;
  /// Whether a row matches the checkpoint name (a checkpoint tensor the model can hold).
  bool has_checkpoint_name(const std::string& checkpoint_name) const;

  const std::vector<TensorName>& rows() const { return rows_; }

 private:
  std::vector<TensorName> rows_;
  std::unordered_map<std::string, size_t> by_module_;      // module pattern -> row
  std::unordered_map<std::string, size_t> by_checkpoint_;  // checkpoint pattern -> row
};

}  // namespace rlft::policy
