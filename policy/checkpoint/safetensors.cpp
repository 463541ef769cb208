#include "policy/checkpoint/safetensors.h"

#include "core/error.h"
#include "policy/checkpoint/config_json.h"
#include "policy/checkpoint/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <unordered_map>

namespace rlft::checkpoint {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

namespace {

// The Rust reference implementation refuses headers above 100 MB; so do we, before
// allocating anything for one.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DtypeEntry {
  const char* name;
  at::ScalarType type;
};
constexpr DtypeEntry kDtypes[] = {
    {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"I64", at::kLong},
    {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},  {"U8", at::kByte},       {"BOOL", at::kBool},
};
// In the format, not (yet) readable here: LibTorch 1.13 has no dtype for them.
constexpr const char* kUnsupportedDtypes[] = {"F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",
                                              "U16",     "U32",     "U64",     "C64",     "E8M0"};

std::string supported_list() {
  std::string s;
  for (const auto& d : kDtypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

}  // namespace

bool is_floating_dtype(at::ScalarType t) {
  return t == at::kDouble || t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
}

std::string safetensors_dtype_name(at::ScalarType type) {
  for (const auto& d : kDtypes)
    if (d.type == type) return d.name;
  throw Error(fmt::format("dtype {} cannot be written to safetensors by rlft (supported: {})", c10::toString(type),
                          supported_list()));
}

struct SafetensorsFile::Impl {
  // The read-only mapping of a whole file.
  struct Mapping {
    const uint8_t* data = nullptr;
    uint64_t size = 0;
    Mapping() = default;
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping() {
      if (data) ::munmap(const_cast<uint8_t*>(data), size);
    }
  };
  std::string path;
  Mapping map;
  uint64_t data_start = 0;  // 8 + header length
  Metadata metadata;
  std::unordered_map<std::string, TensorInfo> tensors;
};

namespace {

at::ScalarType parse_dtype(const std::string& path, const std::string& name, const std::string& dtype) {
  for (const auto& d : kDtypes)
    if (dtype == d.name) return d.type;
  for (const char* u : kUnsupportedDtypes)
    RLFT_CHECK(dtype != u, "{}: tensor `{}` has dtype {}, which rlft cannot read yet (supported: {})", path, name,
               dtype, supported_list());
  throw Error(
      fmt::format("{}: tensor `{}` has unknown dtype `{}` (supported: {})", path, name, dtype, supported_list()));
}

uint64_t get_u64(const std::string& path, const std::string& what, const nlohmann::json& v) {
  RLFT_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0),
             "{}: {} must be a non-negative integer, got {}", path, what, describe_json(v));
  return v.get<uint64_t>();
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const nlohmann::json& e, uint64_t data_bytes) {
  RLFT_CHECK(e.is_object(), "{}: header entry `{}` is not an object: {}", path, name, describe_json(e));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    RLFT_CHECK(e.contains(key), "{}: tensor `{}` has no `{}` in the header", path, name, key);
  TensorInfo info;
  info.name = name;
  RLFT_CHECK(e["dtype"].is_string(), "{}: tensor `{}`: dtype must be a string, got {}", path, name,
             describe_json(e["dtype"]));
  info.dtype = e["dtype"].get<std::string>();
  info.scalar_type = parse_dtype(path, name, info.dtype);
  const auto& shape = e["shape"];
  RLFT_CHECK(shape.is_array(), "{}: tensor `{}`: shape must be an array, got {}", path, name, describe_json(shape));
  uint64_t n_elements = 1;
  bool overflow = false;
  for (const auto& d : shape) {
    const uint64_t dim = get_u64(path, fmt::format("tensor `{}`: each shape dimension", name), d);
    RLFT_CHECK(dim <= static_cast<uint64_t>(INT64_MAX), "{}: tensor `{}`: dimension {} too large", path, name, dim);
    info.shape.push_back(static_cast<int64_t>(dim));
    overflow |= __builtin_mul_overflow(n_elements, dim, &n_elements);
  }
  const auto& off = e["data_offsets"];
  RLFT_CHECK(off.is_array() && off.size() == 2, "{}: tensor `{}`: data_offsets must be [begin, end], got {}", path,
             name, describe_json(off));
  info.begin = get_u64(path, fmt::format("tensor `{}`: data_offsets[0]", name), off[0]);
  info.end = get_u64(path, fmt::format("tensor `{}`: data_offsets[1]", name), off[1]);
  RLFT_CHECK(info.begin <= info.end, "{}: tensor `{}`: data_offsets [{}, {}] end before they begin", path, name,
             info.begin, info.end);
  RLFT_CHECK(info.end <= data_bytes,
             "{}: tensor `{}`: data_offsets [{}, {}] lie past the end of the data section ({} bytes; file "
             "truncated?)",
             path, name, info.begin, info.end, data_bytes);
  uint64_t n_bytes = 0;
  overflow |= __builtin_mul_overflow(n_elements, static_cast<uint64_t>(c10::elementSize(info.scalar_type)), &n_bytes);
  RLFT_CHECK(!overflow && n_bytes == info.n_bytes(),
             "{}: tensor `{}`: shape {} x {} needs {} bytes but data_offsets [{}, {}] hold {}", path, name,
             shape_str(info.shape), info.dtype, overflow ? std::string("too many") : std::to_string(n_bytes),
             info.begin, info.end, info.n_bytes());
  return info;
}

// Sorted by offset, the tensors must tile [0, data_bytes) exactly.
void check_tiling(const std::string& path, const std::unordered_map<std::string, TensorInfo>& tensors,
                  uint64_t data_bytes) {
  std::vector<const TensorInfo*> order;
  order.reserve(tensors.size());
  for (const auto& [_, info] : tensors) order.push_back(&info);
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });
  uint64_t cursor = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo* t : order) {
    RLFT_CHECK(t->begin >= cursor, "{}: tensors `{}` [{}, {}) and `{}` [{}, {}) overlap in the data section", path,
               prev ? prev->name : "", prev ? prev->begin : 0, prev ? prev->end : 0, t->name, t->begin, t->end);
    RLFT_CHECK(t->begin == cursor, "{}: bytes [{}, {}) of the data section belong to no tensor (gap {} `{}`)", path,
               cursor, t->begin, prev ? "between `" + prev->name + "` and" : std::string("before"), t->name);
    cursor = t->end;
    if (t->end > t->begin || !prev) prev = t;
  }
  RLFT_CHECK(cursor == data_bytes,
             "{}: the data section has {} bytes but the tensors end at byte {} ({} trailing bytes belong to no "
             "tensor)",
             path, data_bytes, cursor, data_bytes - cursor);
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto impl = std::make_shared<Impl>();
  impl->path = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  RLFT_CHECK(fd >= 0, "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(fmt::format("{}: not a regular file", path));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    throw Error(
        fmt::format("{}: truncated safetensors file: {} bytes, less than the 8-byte header length", path, size));
  }
  // Private and writable: pages stay the file's (shared with every process mapping it)
  // until written; a write to a tensor shared out of the mapping (mapped()) copies its page
  // and never reaches the file.
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int saved = errno;
  ::close(fd);
  RLFT_CHECK(p != MAP_FAILED, "{}: cannot mmap {} bytes: {}", path, size, std::strerror(saved));
  impl->map.data = static_cast<const uint8_t*>(p);
  impl->map.size = size;

  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, impl->map.data, 8);
  RLFT_CHECK(header_bytes <= size - 8,
             "{}: header length {} runs past the end of the file ({} bytes; truncated or not a safetensors file)", path,
             header_bytes, size);
  RLFT_CHECK(header_bytes <= kMaxHeaderBytes, "{}: header length {} exceeds the format's limit of {} bytes", path,
             header_bytes, kMaxHeaderBytes);
  impl->data_start = 8 + header_bytes;
  const uint64_t data_bytes = size - impl->data_start;
  const char* hbegin = reinterpret_cast<const char*>(impl->map.data + 8);
  const char* hend = hbegin + header_bytes;
  RLFT_CHECK(header_bytes > 0 && *hbegin == '{', "{}: header is not a JSON object (starts with {})", path,
             header_bytes ? nlohmann::json(std::string(hbegin, std::min<uint64_t>(header_bytes, 16)))
                                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                          : std::string("nothing"));

  std::set<std::string> seen;
  std::string duplicate;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(hbegin, hend,
                                   [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
                                     if (event == nlohmann::json::parse_event_t::key && depth == 1 &&
                                         duplicate.empty() && !seen.insert(parsed.get<std::string>()).second)
                                       duplicate = parsed.get<std::string>();
                                     return true;
                                   });
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: header is not valid JSON: {}", path, e.what()));
  }
  RLFT_CHECK(header.is_object(), "{}: header is not a JSON object", path);
  RLFT_CHECK(duplicate.empty(), "{}: tensor `{}` appears twice in the header", path, duplicate);
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      RLFT_CHECK(value.is_object(), "{}: __metadata__ must be an object of strings, got {}", path,
                 describe_json(value));
      for (const auto& [mk, mv] : value.items()) {
        RLFT_CHECK(mv.is_string(), "{}: __metadata__ value of `{}` must be a string, got {}", path, mk,
                   describe_json(mv));
        impl->metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    impl->tensors.emplace(key, parse_entry(path, key, value, data_bytes));
  }
  check_tiling(path, impl->tensors, data_bytes);
  SafetensorsFile f;
  f.impl_ = std::move(impl);
  return f;
}

const std::string& SafetensorsFile::path() const {
  return impl_->path;
}
const Metadata& SafetensorsFile::metadata() const {
  return impl_->metadata;
}
uint64_t SafetensorsFile::file_bytes() const {
  return impl_->map.size;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(impl_->tensors.size());
  for (const auto& [name, _] : impl_->tensors) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

bool SafetensorsFile::contains(const std::string& name) const {
  return impl_->tensors.count(name) > 0;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = impl_->tensors.find(name);
  RLFT_CHECK(it != impl_->tensors.end(), "{}: no tensor `{}` in this file", impl_->path, name);
  return it->second;
}

at::Tensor SafetensorsFile::tensor(const std::string& name, const LoadOptions& options) const {
  const TensorInfo& in = info(name);
  const uint8_t* src = impl_->map.data + impl_->data_start + in.begin;  // bounds checked by open()
  const bool convert = options.dtype && is_floating_dtype(in.scalar_type) && *options.dtype != in.scalar_type;
  const auto elem = c10::elementSize(in.scalar_type);
  at::Tensor out;
  if (in.scalar_type == at::kBool) {
    // A BOOL byte other than 0/1 would be undefined behaviour as a C++ bool: normalise.
    at::Tensor bytes = at::empty(in.shape, at::kByte);
    if (in.n_bytes()) std::memcpy(bytes.data_ptr(), src, in.n_bytes());
    out = bytes.ne(0);
  } else if (convert && reinterpret_cast<uintptr_t>(src) % elem == 0) {
    // Convert straight out of the mapping: one pass, no intermediate copy.
    const at::Tensor view = at::from_blob(const_cast<uint8_t*>(src), in.shape, at::TensorOptions(in.scalar_type));
    out = view.to(*options.dtype);
  } else {
    out = at::empty(in.shape, at::TensorOptions(in.scalar_type));
    if (in.n_bytes()) std::memcpy(out.data_ptr(), src, in.n_bytes());
    if (convert) out = out.to(*options.dtype);
  }
  if (options.device != out.device()) out = out.to(options.device);
  return out;
}

at::Tensor SafetensorsFile::mapped(const std::string& name) const {
  const TensorInfo& in = info(name);
  uint8_t* src = const_cast<uint8_t*>(impl_->map.data + impl_->data_start + in.begin);
  if (in.scalar_type == at::kBool || reinterpret_cast<uintptr_t>(src) % c10::elementSize(in.scalar_type) != 0)
    return {};
  auto keep = impl_;  // the mapping lives as long as the tensor
  return at::from_blob(
      src, in.shape, [keep](void*) {}, at::TensorOptions(in.scalar_type));
}

TensorMap SafetensorsFile::tensors(const LoadOptions& options) const {
  TensorMap out;
  for (const auto& name : names()) out.emplace(name, tensor(name, options));
  return out;
}

TensorMap read_safetensors(const std::string& path, const LoadOptions& options, Metadata* metadata) {
  const SafetensorsFile f = SafetensorsFile::open(path);
  if (metadata) *metadata = f.metadata();
  return f.tensors(options);
}

void write_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    RLFT_CHECK(t.defined(), "{}: tensor `{}` is undefined", path, name);
    RLFT_CHECK(name != "__metadata__", "{}: `__metadata__` is not a valid tensor name", path);
    std::string dtype;
    try {
      dtype = safetensors_dtype_name(t.scalar_type());
    } catch (const Error& e) {
      throw Error(fmt::format("{}: tensor `{}`: {}", path, name, e.what()));
    }
    const uint64_t n_bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {{"dtype", dtype},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", nlohmann::json::array({offset, offset + n_bytes})}};
    offset += n_bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = text.size();
  AtomicFile file(path);
  file.write(&n, 8);
  file.write(text.data(), text.size());
  for (const auto& [name, t] : tensors) {
    if (t.numel() == 0) continue;
    // One tensor at a time is made CPU-contiguous, so memory stays bounded by the largest.
    at::Tensor c = t.detach();
    if (!c.device().is_cpu()) c = c.to(at::kCPU);
    c = c.contiguous();
    file.write(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
  }
  file.commit();
}

}  // namespace rlft::checkpoint
