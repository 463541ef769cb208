#pragma once
// Durable file writes for checkpoints: whole-buffer writes that retry on EINTR and short
// writes, fsync of files and directories, and atomic replacement of a file. Every failure
// is an rlft::Error naming the path and the system's reason (strerror).

#include <cstddef>
#include <cstdint>
#include <string>

namespace rlft::checkpoint {

/// Writes `text` to `path` atomically: a temp file beside it (".NAME.tmp-XXXXXX"), fsync,
/// rename over `path`, fsync of the directory. A crash leaves the old file or the new one.
void write_file_atomic(const std::string& path, const std::string& text);

/// A file being written atomically. commit() fsyncs, renames into place and fsyncs the
/// directory; destroying an uncommitted one removes the temp file.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Appends `n_bytes` from `data`.
  void write(const void* data, size_t n_bytes);
  void commit();
  const std::string& path() const { return path_; }
  uint64_t bytes_written() const { return n_written_; }

 private:
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  uint64_t n_written_ = 0;
};

/// fsyncs a file or a directory.
void fsync_path(const std::string& path);
/// fsyncs the directory that holds `path`.
void fsync_parent(const std::string& path);

namespace detail {
/// Moves directory `from` to `to`, replacing an existing `to` (then deleted). With
/// `use_exchange`, an existing `to` is replaced by one renameat2(RENAME_EXCHANGE); without
/// it (or where the filesystem lacks it), `to` is first renamed aside to a `.NAME.old-...`
/// sibling, which AtomicDir restores if a crash left no `to`.
void swap_dir_into_place(const std::string& from, const std::string& to, bool use_exchange);
}  // namespace detail

}  // namespace rlft::checkpoint
