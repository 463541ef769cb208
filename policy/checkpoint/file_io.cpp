#include "policy/checkpoint/file_io.h"

#include "core/error.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

namespace fs = std::filesystem;

namespace rlft::checkpoint {

namespace {

std::string errno_text() {
  return std::strerror(errno);
}

std::string parent_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  RLFT_CHECK(fd >= 0, "{}: cannot open to fsync: {}", path, errno_text());
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  // Some filesystems refuse fsync on a directory (EINVAL); the data is then as durable as
  // that filesystem makes it and there is nothing better to do.
  RLFT_CHECK(rc == 0 || saved == EINVAL, "{}: fsync failed: {}", path, std::strerror(saved));
}

void fsync_parent(const std::string& path) {
  fsync_path(parent_of(path));
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  const fs::path p(path_);
  RLFT_CHECK(!p.filename().empty(), "{}: not a file name", path_);
  std::string templ = (p.parent_path() / ("." + p.filename().string() + ".tmp-XXXXXX")).string();
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  fd_ = ::mkostemp(buf.data(), O_CLOEXEC);
  RLFT_CHECK(fd_ >= 0, "{}: cannot create a temp file beside it: {}", path_, errno_text());
  tmp_ = buf.data();
  ::fchmod(fd_, 0644);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n_bytes) {
  RLFT_CHECK(fd_ >= 0, "{}: write after commit", path_);
  const char* p = static_cast<const char*>(data);
  while (n_bytes > 0) {
    // Linux writes at most 0x7ffff000 bytes per call.
    const size_t chunk = n_bytes < (size_t{1} << 30) ? n_bytes : (size_t{1} << 30);
    const ssize_t n = ::write(fd_, p, chunk);
    if (n < 0 && errno == EINTR) continue;
    RLFT_CHECK(n > 0, "{}: write failed after {} bytes: {}", path_, n_written_,
               n < 0 ? errno_text() : std::string("no progress"));
    p += n;
    n_bytes -= static_cast<size_t>(n);
    n_written_ += static_cast<uint64_t>(n);
  }
}

void AtomicFile::commit() {
  RLFT_CHECK(fd_ >= 0, "{}: committed twice", path_);
  RLFT_CHECK(::fsync(fd_) == 0, "{}: fsync failed: {}", path_, errno_text());
  const int rc = ::close(fd_);
  fd_ = -1;
  RLFT_CHECK(rc == 0, "{}: close failed: {}", path_, errno_text());
  RLFT_CHECK(::rename(tmp_.c_str(), path_.c_str()) == 0, "{}: cannot rename {} into place: {}", path_, tmp_,
             errno_text());
  tmp_.clear();
  fsync_parent(path_);
}

void write_file_atomic(const std::string& path, const std::string& text) {
  AtomicFile file(path);
  file.write(text.data(), text.size());
  file.commit();
}

namespace detail {

void swap_dir_into_place(const std::string& from, const std::string& to, bool use_exchange) {
  std::error_code ec;
  const bool exists = fs::exists(fs::symlink_status(to, ec));
  if (!exists) {
    RLFT_CHECK(::rename(from.c_str(), to.c_str()) == 0, "{}: cannot rename {} into place: {}", to, from, errno_text());
    fsync_parent(to);
    return;
  }
  RLFT_CHECK(fs::is_directory(fs::symlink_status(to, ec)), "{}: exists and is not a directory", to);
  if (use_exchange) {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_EXCHANGE) == 0) {
      fsync_parent(to);
      fs::remove_all(from, ec);  // `from` now holds the previous checkpoint
      return;
    }
    // EINVAL/ENOSYS: this filesystem cannot exchange; fall through to two renames.
    RLFT_CHECK(errno == EINVAL || errno == ENOSYS || errno == ENOTSUP, "{}: cannot exchange {} into place: {}", to,
               from, errno_text());
  }
  // Rename the old directory aside first. A crash between the two renames leaves no `to`
  // but a `.NAME.old-HOST-PID-N` sibling, which the next AtomicDir for `to` restores.
  const fs::path t(to);
  std::string host(256, '\0');
  ::gethostname(host.data(), host.size());
  host.resize(std::strlen(host.c_str()));
  const std::string aside =
      (t.parent_path() / ("." + t.filename().string() + ".old-" + host + "-" + std::to_string(::getpid()) + "-" +
                          std::to_string(std::random_device{}())))
          .string();
  RLFT_CHECK(::rename(to.c_str(), aside.c_str()) == 0, "{}: cannot move the old directory aside: {}", to, errno_text());
  if (::rename(from.c_str(), to.c_str()) != 0) {
    const std::string why = errno_text();
    ::rename(aside.c_str(), to.c_str());
    throw Error(fmt::format("{}: cannot rename {} into place: {}", to, from, why));
  }
  fsync_parent(to);
  fs::remove_all(aside, ec);
}

}  // namespace detail

}  // namespace rlft::checkpoint
