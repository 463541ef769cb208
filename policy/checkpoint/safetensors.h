#pragma once
// One .safetensors file: reading (mmap, every offset bounds-checked before use) and writing
// (atomic: temp file, fsync, rename, fsync of the directory).
//
// Format (https://github.com/huggingface/safetensors):
//   [u64 little-endian N][N bytes of JSON header, padded with spaces][data section]
//   header = {"__metadata__": {str: str}?, NAME: {"dtype": "F32", "shape": [..],
//             "data_offsets": [begin, end]}, ...}; offsets are relative to the data section,
//   row-major, little-endian. The tensors must tile the data section exactly: sorted by
//   offset they start at 0, leave no gaps, never overlap, and end at the end of the file.
//
// Dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL. Anything else (F8_E4M3, F8_E5M2, U16,
// U32, U64, ...) is rejected when the file is opened, with an error naming the file, the
// tensor and the dtype.
//
// Every malformed file is an rlft::Error naming the file and what is wrong: truncated, a
// header length past the end, a header that is not JSON or not of the format, a tensor whose
// shape x dtype size differs from its byte range, offsets out of bounds, overlapping or with
// gaps, duplicate names.

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rlft::checkpoint {

/// Named tensors, ordered by name (the order in which files are written).
using TensorMap = std::map<std::string, at::Tensor>;
/// The `__metadata__` of a file: string keys to string values.
using Metadata = std::map<std::string, std::string>;

/// How tensors come out of a file.
struct LoadOptions {
  /// Floating-point tensors (F64/F32/F16/BF16) are converted to this dtype (the compute
  /// dtype); integer and bool tensors keep theirs. nullopt: every tensor keeps the file's.
  std::optional<at::ScalarType> dtype;
  /// Where the tensors are placed.
  at::Device device = at::kCPU;
};

/// A tensor's entry in a file's header.
struct TensorInfo {
  std::string name;
  std::string dtype;           ///< as written in the file ("BF16")
  at::ScalarType scalar_type;  ///< the matching LibTorch dtype
  std::vector<int64_t> shape;
  uint64_t begin = 0;  ///< byte offset in the data section
  uint64_t end = 0;    ///< one past the last byte
  uint64_t n_bytes() const { return end - begin; }
};

/// float64, float32, float16 or bfloat16 (the dtypes a load converts).
bool is_floating_dtype(at::ScalarType type);

/// The safetensors name of a LibTorch dtype ("F32" for at::kFloat); throws for a dtype the
/// format (or this reader) does not support.
std::string safetensors_dtype_name(at::ScalarType type);

/// A validated, memory-mapped .safetensors file. Cheap to copy (the mapping is shared).
/// tensor() returns owning tensors (copied out of the mapping), so they outlive the file
/// and are unaffected by later changes to it.
class SafetensorsFile {
 public:
  /// Maps `path` and validates the whole header (see the top of this file); throws
  /// rlft::Error naming `path` for any problem.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const;
  const Metadata& metadata() const;
  /// Tensor names, sorted.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  /// Throws rlft::Error naming the file and the tensor if absent.
  const TensorInfo& info(const std::string& name) const;
  /// The tensor, copied out of the file and converted per `options`.
  at::Tensor tensor(const std::string& name, const LoadOptions& options = {}) const;
  /// The tensor as a view of the mapping, in the file's dtype, not copied (it keeps the
  /// mapping alive). Pages are read from the file on first touch and shared with the page
  /// cache; writing to the tensor copies the pages written (copy-on-write), never the file.
  /// Undefined for a bool tensor or data not aligned to its element size.
  at::Tensor mapped(const std::string& name) const;
  /// Every tensor.
  TensorMap tensors(const LoadOptions& options = {}) const;
  /// Size of the file in bytes.
  uint64_t file_bytes() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

/// Reads every tensor of `path` (convenience for SafetensorsFile::open(path).tensors()).
/// When `metadata` is not null it receives the file's `__metadata__`.
TensorMap read_safetensors(const std::string& path, const LoadOptions& options = {}, Metadata* metadata = nullptr);

/// Writes `tensors` (any device, any layout; the written dtype is each tensor's own) to
/// `path`, tensors laid out in name order, header padded with spaces to a multiple of 8
/// bytes. Atomic: the data goes to a temp file beside `path`, which is fsync'ed and renamed
/// over `path`, then the directory is fsync'ed; a crash leaves either the old file or the
/// new one. Throws rlft::Error naming the file (and the tensor, for an unsupported dtype or
/// an undefined tensor).
void write_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {});

}  // namespace rlft::checkpoint
