#include "policy/kernels/spin_pool.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace rlft::policy {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

class SpinPool {
 public:
  explicit SpinPool(int n_workers) {
    for (int i = 0; i < n_workers; ++i) threads_.emplace_back([this] { work(); });
  }
  ~SpinPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int size() const { return static_cast<int>(threads_.size()); }

  void run(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
    fn_ = &fn;
    n_tasks_ = n_tasks;
    next_.store(0, std::memory_order_relaxed);
    busy_.store(size(), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex_);  // pairs with the sleepers' check
      generation_.fetch_add(1, std::memory_order_release);
    }
    if (sleeping_.load(std::memory_order_acquire) > 0) wake_.notify_all();
    drain();
    while (busy_.load(std::memory_order_acquire) > 0) cpu_relax();
  }

 private:
  void drain() {
    for (int64_t t = next_.fetch_add(1, std::memory_order_relaxed); t < n_tasks_;
         t = next_.fetch_add(1, std::memory_order_relaxed))
      (*fn_)(t);
  }

  void work() {
    uint64_t seen = 0;
    for (;;) {
      // Spin for the next generation, then sleep until it comes.
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
      uint64_t g = generation_.load(std::memory_order_acquire);
      for (int i = 0; g == seen; ++i) {
        cpu_relax();
        if ((i & 255) == 255 && std::chrono::steady_clock::now() > until) break;
        g = generation_.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        sleeping_.fetch_add(1, std::memory_order_acq_rel);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        sleeping_.fetch_sub(1, std::memory_order_acq_rel);
        g = generation_.load(std::memory_order_acquire);
      }
      seen = g;
      if (stop_) return;
      drain();
      busy_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> sleeping_{0};
  std::atomic<int> busy_{0};
  std::atomic<int64_t> next_{0};
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_tasks_ = 0;
  bool stop_ = false;
};

std::mutex pool_mutex;               // one caller at a time
std::unique_ptr<SpinPool> the_pool;  // sized at::get_num_threads() - 1, rebuilt when that changes

}  // namespace

void spin_pool_run(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  if (n_tasks < 2) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t);
    return;
  }
  const int workers = at::get_num_threads() - 1;
  std::unique_lock<std::mutex> lock(pool_mutex, std::try_to_lock);
  if (!lock.owns_lock() || at::in_parallel_region() || workers < 1) {
    at::parallel_for(0, n_tasks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) fn(t);
    });
    return;
  }
  if (!the_pool || the_pool->size() != workers) {
    the_pool.reset();
    the_pool = std::make_unique<SpinPool>(workers);
  }
  the_pool->run(n_tasks, fn);
}

}  // namespace rlft::policy
