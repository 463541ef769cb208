#include "policy/checkpoint/checkpoint.h"

#include "core/error.h"
#include "policy/checkpoint/config_json.h"
#include "policy/checkpoint/file_io.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <unordered_map>

namespace fs = std::filesystem;

namespace rlft::checkpoint {

struct CheckpointReader::Impl {
  std::string path;
  std::vector<SafetensorsFile> files;                      // in file-name order
  std::unordered_map<std::string, size_t> file_of_tensor;  // name -> index in files
  Metadata empty_metadata;
};

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RLFT_CHECK(in, "{}: cannot open: {}", path, std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  RLFT_CHECK(!in.bad(), "{}: read failed", path);
  return s.str();
}

// A relative path inside the checkpoint: no absolute paths, no "..".
bool is_inside_name(const std::string& name) {
  if (name.empty()) return false;
  const fs::path p(name);
  if (p.is_absolute()) return false;
  for (const auto& part : p)
    if (part == ".." || part.empty()) return false;
  return true;
}

std::string list_some(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  if (names.empty()) return "it is empty";
  if (names.size() > 10) {
    const size_t more = names.size() - 10;
    names.resize(10);
    return fmt::format("it holds {}, and {} more", fmt::join(names, ", "), more);
  }
  return fmt::format("it holds {}", fmt::join(names, ", "));
}

void open_sharded(const std::string& dir, std::vector<SafetensorsFile>& files,
                  std::unordered_map<std::string, size_t>& file_of_tensor) {
  const std::string index_path = (fs::path(dir) / kIndexFileName).string();
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_text(index_path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", index_path, e.what()));
  }
  RLFT_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
             "{}: expected a JSON object with a `weight_map` object (tensor name -> shard file)", index_path);
  if (index.contains("metadata")) {
    const auto& md = index["metadata"];
    RLFT_CHECK(md.is_object(), "{}: `metadata` must be an object, got {}", index_path, describe_json(md));
    if (md.contains("total_size"))
      RLFT_CHECK(md["total_size"].is_number(), "{}: metadata.total_size must be a number, got {}", index_path,
                 describe_json(md["total_size"]));
  }
  std::map<std::string, std::vector<std::string>> by_file;  // shard -> tensors the index puts there
  for (const auto& [name, v] : index["weight_map"].items()) {
    RLFT_CHECK(v.is_string(), "{}: weight_map[`{}`] must be a file name, got {}", index_path, name, describe_json(v));
    const std::string file = v.get<std::string>();
    RLFT_CHECK(is_inside_name(file), "{}: weight_map[`{}`] = \"{}\" is not a file inside the checkpoint", index_path,
               name, file);
    by_file[file].push_back(name);
  }
  RLFT_CHECK(!by_file.empty(), "{}: weight_map is empty", index_path);
  for (const auto& [file, names] : by_file) {
    const std::string shard_path = (fs::path(dir) / file).string();
    std::error_code ec;
    RLFT_CHECK(fs::is_regular_file(shard_path, ec), "{}: names shard {} (for tensor `{}`), which is missing",
               index_path, file, names.front());
    SafetensorsFile shard = SafetensorsFile::open(shard_path);
    for (const auto& name : names)
      RLFT_CHECK(shard.contains(name), "{}: the index puts tensor `{}` in this shard, which does not hold it",
                 shard_path, name);
    if (shard.names().size() != names.size()) {
      const std::set<std::string> listed(names.begin(), names.end());
      for (const auto& name : shard.names())
        RLFT_CHECK(listed.count(name), "{}: holds tensor `{}`, which {} does not assign to this shard", shard_path,
                   name, kIndexFileName);
    }
    const size_t i = files.size();
    files.push_back(std::move(shard));
    for (const auto& name : names) file_of_tensor.emplace(name, i);
  }
}

}  // namespace

CheckpointReader CheckpointReader::open(const std::string& path) {
  auto impl = std::make_shared<Impl>();
  impl->path = path;
  std::error_code ec;
  const auto st = fs::status(path, ec);
  RLFT_CHECK(fs::exists(st), "{}: no such checkpoint (directory or .safetensors file)", path);
  if (fs::is_regular_file(st)) {
    impl->files.push_back(SafetensorsFile::open(path));
  } else {
    RLFT_CHECK(fs::is_directory(st), "{}: not a directory or a file", path);
    if (fs::exists(fs::path(path) / kIndexFileName)) {
      open_sharded(path, impl->files, impl->file_of_tensor);
    } else {
      const std::string single = (fs::path(path) / kSingleFileName).string();
      RLFT_CHECK(fs::exists(single), "{}: not a checkpoint: no {} or {} ({})", path, kSingleFileName, kIndexFileName,
                 list_some(path));
      impl->files.push_back(SafetensorsFile::open(single));
    }
  }
  if (impl->files.size() == 1)
    for (const auto& name : impl->files[0].names()) impl->file_of_tensor.emplace(name, 0);
  CheckpointReader r;
  r.impl_ = std::move(impl);
  return r;
}

const std::string& CheckpointReader::path() const {
  return impl_->path;
}

std::vector<std::string> CheckpointReader::names() const {
  std::vector<std::string> out;
  out.reserve(impl_->file_of_tensor.size());
  for (const auto& [name, _] : impl_->file_of_tensor) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

bool CheckpointReader::contains(const std::string& name) const {
  return impl_->file_of_tensor.count(name) > 0;
}

const std::string& CheckpointReader::file_of(const std::string& name) const {
  const auto it = impl_->file_of_tensor.find(name);
  RLFT_CHECK(it != impl_->file_of_tensor.end(), "{}: no tensor `{}` in this checkpoint", impl_->path, name);
  return impl_->files[it->second].path();
}

const TensorInfo& CheckpointReader::info(const std::string& name) const {
  const auto it = impl_->file_of_tensor.find(name);
  RLFT_CHECK(it != impl_->file_of_tensor.end(), "{}: no tensor `{}` in this checkpoint", impl_->path, name);
  return impl_->files[it->second].info(name);
}

at::Tensor CheckpointReader::tensor(const std::string& name, const LoadOptions& options) const {
  const auto it = impl_->file_of_tensor.find(name);
  RLFT_CHECK(it != impl_->file_of_tensor.end(), "{}: no tensor `{}` in this checkpoint", impl_->path, name);
  return impl_->files[it->second].tensor(name, options);
}

at::Tensor CheckpointReader::mapped(const std::string& name) const {
  const auto it = impl_->file_of_tensor.find(name);
  RLFT_CHECK(it != impl_->file_of_tensor.end(), "{}: no tensor `{}` in this checkpoint", impl_->path, name);
  return impl_->files[it->second].mapped(name);
}

TensorMap CheckpointReader::tensors(const LoadOptions& options) const {
  TensorMap out;
  for (const auto& name : names()) out.emplace(name, tensor(name, options));
  return out;
}

const Metadata& CheckpointReader::metadata() const {
  return impl_->files.empty() ? impl_->empty_metadata : impl_->files.front().metadata();
}

uint64_t CheckpointReader::total_bytes() const {
  uint64_t n = 0;
  for (const auto& [name, i] : impl_->file_of_tensor) n += impl_->files[i].info(name).n_bytes();
  return n;
}

std::vector<std::string> CheckpointReader::files() const {
  std::vector<std::string> out;
  for (const auto& f : impl_->files) out.push_back(f.path());
  return out;
}

TensorMap read_checkpoint(const std::string& path, const LoadOptions& options) {
  return CheckpointReader::open(path).tensors(options);
}

// ---- writing --------------------------------------------------------------------------------

namespace {

std::string hostname() {
  std::string host(256, '\0');
  if (::gethostname(host.data(), host.size()) != 0) return "host";
  host.resize(std::strlen(host.c_str()));
  for (char& c : host)
    if (c == '/') c = '_';
  return host;
}

// `.NAME.tmp-HOST-PID-…` / `.NAME.old-HOST-PID-…` siblings left by dead processes on this host.
void clean_stale(const fs::path& dir) {
  const std::string name = dir.filename().string();
  const std::string host = hostname();
  std::error_code ec;
  const fs::path parent = dir.parent_path().empty() ? fs::path(".") : dir.parent_path();
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string f = e.path().filename().string();
    for (const char* kind : {".tmp-", ".old-"}) {
      const std::string prefix = "." + name + kind + host + "-";
      if (f.rfind(prefix, 0) != 0) continue;
      const long pid = std::strtol(f.c_str() + prefix.size(), nullptr, 10);
      // Only when its writer is certainly gone (ESRCH); a live or unknowable one keeps it.
      if (pid <= 0 || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
      std::error_code ec2;
      if (std::string(kind) == ".old-" && !fs::exists(dir, ec2)) {
        // A crash between "move the old one aside" and "move the new one in": restore.
        fs::rename(e.path(), dir, ec2);
      } else {
        fs::remove_all(e.path(), ec2);
      }
    }
  }
}

void fsync_tree(const fs::path& root) {
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file() || e.is_directory()) fsync_path(e.path().string());
  }
  fsync_path(root.string());
}

void check_name(const std::string& dir, const std::string& name) {
  RLFT_CHECK(is_inside_name(name), "{}: `{}` is not a file name inside the checkpoint", dir, name);
}

}  // namespace

AtomicDir::AtomicDir(std::string dir) : dir_(std::move(dir)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  const fs::path d(dir_);
  RLFT_CHECK(!d.filename().empty() && d.filename() != "." && d.filename() != "..", "{}: not a directory name", dir_);
  const fs::path parent = d.parent_path().empty() ? fs::path(".") : d.parent_path();
  std::error_code ec;
  RLFT_CHECK(fs::is_directory(parent, ec), "{}: the parent directory {} does not exist", dir_, parent.string());
  RLFT_CHECK(!fs::exists(d, ec) || fs::is_directory(d, ec), "{}: exists and is not a directory", dir_);
  clean_stale(d);
  std::string templ =
      (parent / ("." + d.filename().string() + ".tmp-" + hostname() + "-" + std::to_string(::getpid()) + "-XXXXXX"))
          .string();
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  RLFT_CHECK(::mkdtemp(buf.data()) != nullptr, "{}: cannot create a temp directory beside it: {}", dir_,
             std::strerror(errno));
  tmp_ = buf.data();
  ::chmod(tmp_.c_str(), 0755);
}

AtomicDir::~AtomicDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void AtomicDir::commit() {
  RLFT_CHECK(!committed_, "{}: committed twice", dir_);
  fsync_tree(tmp_);
  detail::swap_dir_into_place(tmp_, dir_, /*use_exchange=*/true);
  committed_ = true;
}

void write_checkpoint(const std::string& dir, const TensorMap& tensors, const CheckpointWriteOptions& options) {
  RLFT_CHECK(options.max_shard_bytes > 0, "{}: max_shard_bytes must be > 0", dir);
  RLFT_CHECK(!tensors.empty(), "{}: no tensors to write", dir);
  for (const auto& [name, _] : options.extra_files) check_name(dir, name);
  for (const auto& [name, _] : options.copy_files) check_name(dir, name);

  // Plan shards greedily in name order, as Hugging Face's split_torch_state_dict_into_shards.
  std::vector<TensorMap> shards(1);
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (const auto& [name, t] : tensors) {
    RLFT_CHECK(t.defined(), "{}: tensor `{}` is undefined", dir, name);
    const uint64_t n = static_cast<uint64_t>(t.numel()) * t.element_size();
    if (!shards.back().empty() && shard_bytes + n > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().emplace(name, t);
    shard_bytes += n;
    total_bytes += n;
  }

  AtomicDir out(dir);
  const fs::path root(out.path());
  if (shards.size() == 1) {
    write_safetensors((root / kSingleFileName).string(), shards[0], options.metadata);
  } else {
    nlohmann::json weight_map = nlohmann::json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
      write_safetensors((root / file).string(), shards[i], options.metadata);
      for (const auto& [name, _] : shards[i]) weight_map[name] = file;
    }
    const nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    write_file_atomic((root / kIndexFileName).string(), index.dump(2) + "\n");
  }
  if (options.config) write_file_atomic((root / kConfigFileName).string(), format_config_json(*options.config));
  for (const auto& [name, text] : options.extra_files) {
    fs::create_directories((root / name).parent_path());
    write_file_atomic((root / name).string(), text);
  }
  for (const auto& [name, source] : options.copy_files) {
    fs::create_directories((root / name).parent_path());
    std::error_code ec;
    fs::copy_file(source, root / name, fs::copy_options::overwrite_existing, ec);
    RLFT_CHECK(!ec, "{}: cannot copy {} into the checkpoint as {}: {}", dir, source, name, ec.message());
  }
  out.commit();
}

}  // namespace rlft::checkpoint
