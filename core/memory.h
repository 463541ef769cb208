#pragma once
// The process's memory, as the kernel and the CUDA allocator count it: what `memory/*`
// metrics report and what the fit check (rl/memory_estimate.h) compares against.

#include <cstdint>
#include <optional>

namespace rlft::memory {

/// Resident set size now (VmRSS), bytes; 0 where /proc is unreadable.
int64_t current_rss_bytes();
/// Peak resident set size (VmHWM) since the process started or since the last
/// reset_peak_rss() that succeeded, bytes; 0 where /proc is unreadable.
int64_t peak_rss_bytes();
/// Starts a new peak (writes 5 to /proc/self/clear_refs). False where the kernel refuses;
/// peak_rss_bytes() then keeps counting from the start of the process.
bool reset_peak_rss();

/// Memory this process could still take: the smaller of the machine's MemAvailable and the
/// room under the cgroup's memory.max (cgroup v2) when one is set, bytes; nullopt where
/// neither can be read.
std::optional<int64_t> available_bytes();

/// CUDA: bytes the caching allocator has handed out at most on `device` since the last
/// reset_cuda_peak() (torch.cuda.max_memory_allocated); nullopt in a build without CUDA.
std::optional<int64_t> cuda_max_allocated_bytes(int device);
void reset_cuda_peak(int device);

}  // namespace rlft::memory
