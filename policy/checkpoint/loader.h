#pragma once
// Loading a model's parameters from a checkpoint against what the model expects: every
// expected tensor present with the expected shape (and a floating dtype, or the exact dtype
// asked for), nothing unexpected left over, floating tensors converted to the compute dtype.
// All problems are reported in one rlft::Error naming the checkpoint, each tensor, and
// expected vs found:
//
//   runs/x/ckpt: 2 problems loading the checkpoint:
//     model.layers.0.mlp.gate.weight: missing (expected shape [8, 64])
//     model.norm.weight: shape [32] in the checkpoint, the model expects [64]

#include "policy/checkpoint/checkpoint.h"

#include <torch/nn/module.h>

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace rlft::checkpoint {

/// One tensor the model expects.
struct ParamSpec {
  std::string name;            ///< the checkpoint's (HF) name
  std::vector<int64_t> shape;  ///< expected shape
  /// The dtype the checkpoint must store it in; nullopt: any floating dtype (F64/F32/F16/
  /// BF16), converted to LoadParamsOptions::dtype.
  std::optional<at::ScalarType> stored_dtype;
};

struct LoadParamsOptions {
  /// Compute dtype floating tensors are converted to; nullopt: keep the stored dtype.
  std::optional<at::ScalarType> dtype;
  at::Device device = at::kCPU;
  /// Expected names that may be absent (e.g. "lm_head.weight" with tied embeddings); absent
  /// ones are simply not in the result.
  std::set<std::string> optional_names;
  /// Checkpoint tensors that are not expected but are no error when present, by exact name
  /// or by prefix ending in '.' or by suffix starting with '.' (e.g. ".rotary_emb.inv_freq").
  std::vector<std::string> ignore;
  /// load_into_module: parameters whose dtype, device (CPU) and layout the file matches
  /// take a view of the mapped file instead of a copy (CheckpointReader::mapped): for frozen
  /// weights, read from the page cache and shared with other processes. Buffers are copied.
  bool share_mapped = false;
  /// When true, unexpected tensors are skipped silently rather than an error.
  bool allow_unexpected = false;
  /// load_into_module: the checkpoint name of a module tensor (an architecture's name
  /// table); unset = the module's own name. Errors name the checkpoint's names.
  std::function<std::string(const std::string& module_name)> checkpoint_name;
};

/// Loads the tensors `specs` name from the checkpoint at `path` (directory or file).
/// Throws one rlft::Error listing every missing, unexpected, wrong-shape or wrong-dtype
/// tensor (up to 20, then a count) before reading any data.
TensorMap load_params(const std::string& path, const std::vector<ParamSpec>& specs,
                      const LoadParamsOptions& options = {});
TensorMap load_params(const CheckpointReader& reader, const std::vector<ParamSpec>& specs,
                      const LoadParamsOptions& options = {});

/// Specs from a module's parameters and persistent buffers (names as named_parameters()
/// gives them, shapes as they are; stored_dtype unset for floating tensors, the tensor's
/// own dtype otherwise).
std::vector<ParamSpec> module_specs(const torch::nn::Module& module);

/// Copies the checkpoint's tensors into `module`'s parameters and buffers in place (under
/// NoGradGuard, converted to each parameter's dtype and device), each read under
/// `options.checkpoint_name` of its module name. Same checks and errors as load_params();
/// `options.dtype`/`device` are ignored (the module's own are used).
/// Names in `options.optional_names` that are absent leave the parameter as it was.
void load_into_module(torch::nn::Module& module, const std::string& path, const LoadParamsOptions& options = {});
/// The same from a checkpoint already opened (its headers are not validated again).
void load_into_module(torch::nn::Module& module, const CheckpointReader& reader, const LoadParamsOptions& options = {});

/// The module's parameters and buffers by name (detached, sharing storage), ready for
/// write_checkpoint(). Names in `skip` are left out (e.g. "lm_head.weight" when tied).
TensorMap module_tensors(const torch::nn::Module& module, const std::set<std::string>& skip = {});

}  // namespace rlft::checkpoint
