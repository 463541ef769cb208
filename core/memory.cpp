#include "core/memory.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#ifdef RLFT_CUDA_STATS
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace rlft::memory {

namespace {

// The value of "Key:   123 kB" in a /proc file, in bytes; 0 when absent.
int64_t proc_kb_field(const char* path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, key.size(), key) == 0 && line.size() > key.size() && line[key.size()] == ':') {
      std::istringstream fields(line.substr(key.size() + 1));
      int64_t kb = 0;
      fields >> kb;
      return kb * 1024;
    }
  return 0;
}

// A cgroup v2 file holding a byte count or "max"; nullopt when absent or "max".
std::optional<int64_t> cgroup_bytes(const char* path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word == "max") return std::nullopt;
  try {
    return std::stoll(word);
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

int64_t current_rss_bytes() {
  return proc_kb_field("/proc/self/status", "VmRSS");
}

int64_t peak_rss_bytes() {
  return proc_kb_field("/proc/self/status", "VmHWM");
}

bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

std::optional<int64_t> available_bytes() {
  std::optional<int64_t> best;
  if (const int64_t avail = proc_kb_field("/proc/meminfo", "MemAvailable"); avail > 0) best = avail;
  const auto limit = cgroup_bytes("/sys/fs/cgroup/memory.max");
  const auto used = cgroup_bytes("/sys/fs/cgroup/memory.current");
  if (limit && used) {
    const int64_t room = std::max<int64_t>(0, *limit - *used);
    best = best ? std::min(*best, room) : room;
  }
  return best;
}

#ifdef RLFT_CUDA_STATS
std::optional<int64_t> cuda_max_allocated_bytes(int device) {
  // allocated_bytes[0] is the aggregate over pool kinds (StatType::AGGREGATE).
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
  return static_cast<int64_t>(stats.allocated_bytes[0].peak);
}
void reset_cuda_peak(int device) {
  c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
}
#else
std::optional<int64_t> cuda_max_allocated_bytes(int) {
  return std::nullopt;
}
void reset_cuda_peak(int) {}
#endif

}  // namespace rlft::memory
