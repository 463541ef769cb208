#pragma once
// Checkpoint directories in the Hugging Face layout:
//
//   DIR/config.json
//   DIR/model.safetensors                                   (one file), or
//   DIR/model-00001-of-00003.safetensors ... + DIR/model.safetensors.index.json
//        index = {"metadata": {"total_size": <sum of tensor bytes>},
//                 "weight_map": {tensor name: shard file name}}
//
// Reading validates every shard's header when the checkpoint is opened and reads tensor
// data on demand. Writing is atomic for the whole directory: everything is
// written into a temp directory beside DIR, fsync'ed, then swapped in with one rename (an
// atomic exchange when DIR already exists), so a crash or kill -9 at any moment leaves
// either the previous checkpoint or the new one at DIR, never a mixture or a half-written one.

#include "policy/checkpoint/safetensors.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rlft::checkpoint {

inline constexpr const char* kSingleFileName = "model.safetensors";
inline constexpr const char* kIndexFileName = "model.safetensors.index.json";
inline constexpr const char* kConfigFileName = "config.json";

/// An opened checkpoint: a directory (single file or shards + index) or one .safetensors
/// file. All headers are validated by open(); tensor data is read on demand. Cheap to copy.
class CheckpointReader {
 public:
  /// `path`: a checkpoint directory, or a .safetensors file. In a directory the index wins
  /// when both it and model.safetensors exist. Throws rlft::Error naming the path for a
  /// missing directory, a directory with neither file, a malformed index (not JSON, no
  /// weight_map, a weight_map value that is not a file name), an index naming a missing
  /// shard, a shard lacking a tensor the index assigns it, a shard holding tensors the
  /// index does not list, or the same tensor in two shards.
  static CheckpointReader open(const std::string& path);

  /// The directory (or the file) given to open().
  const std::string& path() const;
  /// Tensor names, sorted.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  /// Throws rlft::Error naming the checkpoint and the tensor when absent.
  const TensorInfo& info(const std::string& name) const;
  /// The file that holds `name` (full path).
  const std::string& file_of(const std::string& name) const;
  at::Tensor tensor(const std::string& name, const LoadOptions& options = {}) const;
  TensorMap tensors(const LoadOptions& options = {}) const;
  /// SafetensorsFile::mapped() of the shard holding `name`.
  at::Tensor mapped(const std::string& name) const;
  /// `__metadata__` of the first shard (HF writes {"format": "pt"} in each).
  const Metadata& metadata() const;
  /// Sum of the tensors' byte sizes.
  uint64_t total_bytes() const;
  /// The shard files, in name order (one entry for a single-file checkpoint).
  std::vector<std::string> files() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

/// Reads every tensor of a checkpoint directory (or file).
TensorMap read_checkpoint(const std::string& path, const LoadOptions& options = {});

/// How a checkpoint directory is written.
struct CheckpointWriteOptions {
  /// Largest shard in bytes (tensor data). A checkpoint that fits is one model.safetensors;
  /// otherwise shards named model-0000i-of-0000n.safetensors plus the index. A tensor larger
  /// than this gets a shard of its own (as Hugging Face does). Must be > 0. Default 5 GB,
  /// Hugging Face's default.
  uint64_t max_shard_bytes = 5'000'000'000ULL;
  /// `__metadata__` written in each file (Hugging Face writes {"format": "pt"}).
  Metadata metadata = {{"format", "pt"}};
  /// Written as config.json when set (see config_json.h for the key order and format).
  std::optional<nlohmann::json> config;
  /// Other files written into the directory, name (relative, may contain '/') -> contents
  /// (e.g. "generation_config.json").
  std::map<std::string, std::string> extra_files;
  /// Files copied into the directory, name (relative) -> source path (e.g. "tokenizer.json"
  /// from the checkpoint a run started from). The source may lie in the directory being
  /// replaced: it is copied before the swap.
  std::map<std::string, std::string> copy_files;
};

/// Writes `tensors` as a checkpoint directory at `dir`, atomically (see the top of this
/// file). The parent directory must exist. Throws rlft::Error naming the path on failure,
/// leaving `dir` as it was.
void write_checkpoint(const std::string& dir, const TensorMap& tensors, const CheckpointWriteOptions& options = {});

/// A directory written in a temp directory beside its destination and swapped into place
/// by commit(). For callers that write more than tensors (trainer state):
///
///   AtomicDir out("runs/x/step-100");
///   write_safetensors(out.path() + "/model.safetensors", ...);   // or any file
///   out.commit();   // fsyncs every file and directory, then renames into place
///
/// Destroying it without commit() removes the temp directory. Temp directories are named
/// `.NAME.tmp-HOST-PID-RANDOM`; constructing an AtomicDir removes those that a dead process
/// on this host left behind for the same destination.
class AtomicDir {
 public:
  /// `dir`: the destination. Its parent must exist. Creates the temp directory.
  explicit AtomicDir(std::string dir);
  ~AtomicDir();
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;

  /// The temp directory to write into.
  const std::string& path() const { return tmp_; }
  /// The destination.
  const std::string& destination() const { return dir_; }
  /// fsyncs all files and directories under path(), renames it to destination() (replacing
  /// an existing directory by an atomic exchange, then deleting the old one), fsyncs the
  /// parent. Throws rlft::Error on failure (destination untouched unless the swap happened).
  void commit();

 private:
  std::string dir_;
  std::string tmp_;
  bool committed_ = false;
};

}  // namespace rlft::checkpoint
