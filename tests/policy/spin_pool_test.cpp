// The decode kernels' worker pool (policy/kernels/spin_pool.h): every task runs exactly once,
// also when two threads call at once (one takes the pool, the other the fallback), when the
// thread count changes, and back to back (workers spinning or asleep).
#include "policy/kernels/spin_pool.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too

using rlft::policy::spin_pool_run;

namespace {

// Runs n tasks and checks each ran once.
bool each_once(int64_t n) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  for (auto& h : hits) h = 0;
  spin_pool_run(n, [&](int64_t t) { hits[static_cast<size_t>(t)].fetch_add(1); });
  for (const auto& h : hits)
    if (h.load() != 1) return false;
  return true;
}

}  // namespace

TEST_CASE("the spin pool runs every task exactly once") {
  const int threads = at::get_num_threads();
  at::set_num_threads(std::max(2, threads));
  for (int64_t n : {0, 1, 2, 3, 17, 1000}) CHECK(each_once(n));
  for (int round = 0; round < 200; ++round) REQUIRE(each_once(7));  // back to back: workers awake
  std::this_thread::sleep_for(std::chrono::milliseconds(5));        // long enough for them to sleep
  CHECK(each_once(64));
  at::set_num_threads(threads);
  CHECK(each_once(33));
}

TEST_CASE("two threads calling the spin pool at once both complete") {
  std::atomic<int> ok{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 2; ++c)
    callers.emplace_back([&] {
      bool all = true;
      for (int round = 0; round < 100; ++round) all = all && each_once(9);
      if (all) ok.fetch_add(1);
    });
  for (auto& t : callers) t.join();
  CHECK(ok.load() == 2);
}
