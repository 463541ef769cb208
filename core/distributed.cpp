#include "core/distributed.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"

namespace rlft::dist {
namespace {

bool env_int(const char* name, int& out, int min_value, int max_value) {
  const char* v = std::getenv(name);
  if (!v) return false;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  RLFT_CHECK(*v && end && *end == '\0' && x >= min_value && x <= max_value,
             "environment variable {}={}: expected an integer in [{}, {}]", name, v, min_value, max_value);
  out = static_cast<int>(x);
  return true;
}

std::string env_str(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace

Env Env::from_environment() {
  Env e;
  constexpr int kMax = 1 << 20;
  if (env_int("WORLD_SIZE", e.world_size, 1, kMax)) {
    e.launcher = "torchrun";
    RLFT_CHECK(env_int("RANK", e.rank, 0, kMax), "environment variable RANK is missing (WORLD_SIZE is set)");
    if (!env_int("LOCAL_RANK", e.local_rank, 0, kMax)) e.local_rank = e.rank;
    if (!env_int("LOCAL_WORLD_SIZE", e.local_world_size, 1, kMax)) e.local_world_size = e.world_size;
  } else if (env_int("SLURM_STEP_NUM_TASKS", e.world_size, 1, kMax)) {
    // A task of an srun step (a batch script itself, which also sees SLURM_NTASKS, is not).
    e.launcher = "slurm";
    RLFT_CHECK(env_int("SLURM_PROCID", e.rank, 0, kMax),
               "environment variable SLURM_PROCID is missing (SLURM_STEP_NUM_TASKS is set)");
    if (!env_int("SLURM_LOCALID", e.local_rank, 0, kMax)) e.local_rank = e.rank;
    if (!env_int("SLURM_NTASKS_PER_NODE", e.local_world_size, 1, kMax)) e.local_world_size = e.world_size;
  }
  RLFT_CHECK(e.rank < e.world_size, "rank {} is not below the world size {} ({} variables)", e.rank, e.world_size,
             e.launcher);
  e.master_addr = env_str("MASTER_ADDR", e.master_addr);
  env_int("MASTER_PORT", e.master_port, 1, 65535);
  return e;
}

Options Options::from_config(const ConfigView& s) {
  Options o;
  o.backend = s.get<std::string>("backend", o.backend);
  o.timeout_s = s.get<double>("timeout_s", o.timeout_s);
  return o;
}

void Options::validate() const {
  RLFT_CHECK_OPTION(backend == "auto" || backend == "gloo" || backend == "nccl", "backend", backend,
                    "must be auto, gloo or nccl");
  RLFT_CHECK_OPTION(timeout_s > 0, "timeout_s", timeout_s,
                    "must be > 0 (seconds a collective may wait for the other ranks)");
}

namespace {

// The store keys of the failure diagnosis.
std::string heartbeat_key(int rank) {
  return fmt::format("rlft/heartbeat/{}", rank);
}
// `group` "" is the whole world's; a subgroup's collectives count apart.
std::string progress_key(const std::string& group, int rank) {
  return group.empty() ? fmt::format("rlft/progress/{}", rank) : fmt::format("rlft/progress/{}/{}", group, rank);
}

// The store's, Gloo's and the heartbeat's threads never take SIGINT/SIGTERM (they inherit
// the mask they are created under): a stop signal reaches the main thread, which finishes
// its step. The waits in between (for the other ranks) stay interruptible.
struct SignalMask {
  sigset_t old;
  SignalMask() {
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
  }
  ~SignalMask() { pthread_sigmask(SIG_SETMASK, &old, nullptr); }
};

c10::intrusive_ptr<c10d::TCPStore> store_client(const Env& env, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(env.master_port);
  so.isServer = false;
  so.waitWorkers = false;
  so.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
}

}  // namespace

struct Context::Impl {
  Env env;                                     // a subgroup's: rank and size within it
  c10::intrusive_ptr<c10d::Store> store;       // the process group's (a subgroup's is prefixed)
  c10::intrusive_ptr<c10d::Store> base_store;  // the world's: heartbeats, progress, messages
  std::string group_name;                      // "" for the world, else the subgroup's name
  std::vector<int> members;                    // global ranks by group rank (empty: the world)
  int world_rank = 0, world_size = 1;          // this process in the whole world

  int global(int r) const { return members.empty() ? r : members[static_cast<size_t>(r)]; }
  // How errors name this rank: "rank 3/4", or "rank 3/4 (1/2 of the trainers group)".
  std::string where() const {
    if (group_name.empty()) return fmt::format("rank {}/{}", world_rank, world_size);
    return fmt::format("rank {}/{} ({}/{} of the {} group)", world_rank, world_size, env.rank, env.world_size,
                       group_name);
  }
  // Typed, not through a common base: in LibTorch 2.x the backends derive from c10d::Backend,
  // in 1.13 from c10d::ProcessGroup; group() calls whichever is set.
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef USE_C10D_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif

  template <typename Fn>
  c10::intrusive_ptr<c10d::Work> group(Fn&& fn) {
#ifdef USE_C10D_NCCL
    if (nccl) return fn(*nccl);
#endif
    return fn(*gloo);
  }
  std::chrono::milliseconds timeout{600000};
  at::Device device{at::kCPU};  // where NCCL needs the tensors
  int64_t seq = 0;              // collectives entered
  double waited_s = 0.0;        // seconds in collectives since take_collective_seconds()

  // The heartbeat: a thread with its own store connection.
  std::thread beat_thread;
  std::mutex beat_mutex;
  std::condition_variable beat_cv;
  bool beat_stop = false;

  ~Impl() {
    if (beat_thread.joinable()) {
      {
        std::lock_guard<std::mutex> lock(beat_mutex);
        beat_stop = true;
      }
      beat_cv.notify_all();
      beat_thread.join();
    }
  }

  void start_heartbeat() {
    auto client = store_client(env, std::chrono::milliseconds(5000));
    client->add(heartbeat_key(env.rank), 1);
    beat_thread = std::thread([this, client] {
      std::unique_lock<std::mutex> lock(beat_mutex);
      while (!beat_cv.wait_for(lock, std::chrono::milliseconds(500), [this] { return beat_stop; })) {
        try {
          client->add(heartbeat_key(env.rank), 1);
        } catch (const std::exception&) {
          return;  // the store is gone: rank 0 has ended; the next collective reports it
        }
      }
    });
  }

  // Before a collective: this rank's sequence number and the collective's name, in the store.
  void enter(const char* what) {
    ++seq;
    const std::string v = fmt::format("{} {}", seq, what);
    try {
      base_store->set(progress_key(group_name, world_rank), std::vector<uint8_t>(v.begin(), v.end()));
    } catch (const std::exception&) {
      // The store is unreachable; the collective itself will fail and be diagnosed.
    }
  }

  // Why collective `what` (#seq) failed, from the peers' heartbeats and progress.
  std::string diagnose(const char* what) const {
    const int world = env.world_size;
    try {
      auto client = store_client(env, std::chrono::milliseconds(3000));
      std::vector<int64_t> before(static_cast<size_t>(world)), after(static_cast<size_t>(world));
      for (int r = 0; r < world; ++r) before[static_cast<size_t>(r)] = client->add(heartbeat_key(global(r)), 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(2000));
      for (int r = 0; r < world; ++r) after[static_cast<size_t>(r)] = client->add(heartbeat_key(global(r)), 0);
      std::vector<std::string> findings;
      for (int r = 0; r < world; ++r) {
        if (r == env.rank) continue;
        if (after[static_cast<size_t>(r)] == before[static_cast<size_t>(r)]) {
          findings.push_back(fmt::format("rank {} has died or is frozen (no heartbeat for 2 s)", global(r)));
          continue;
        }
        std::string at = "none";
        int64_t their_seq = 0;
        if (client->check({progress_key(group_name, global(r))})) {
          const auto bytes = client->get(progress_key(group_name, global(r)));
          at.assign(bytes.begin(), bytes.end());
          their_seq = std::strtoll(at.c_str(), nullptr, 10);
        }
        if (their_seq < seq)
          findings.push_back(
              fmt::format("rank {} is alive but has not reached {} #{} (it is at #{})", global(r), what, seq, at));
      }
      if (findings.empty()) return "every peer is alive and has reached this collective";
      return fmt::format("{}", fmt::join(findings, "; "));
    } catch (const std::exception&) {
      if (world_rank == 0) return "the rendezvous store of this rank cannot be read";
      return fmt::format("rank 0 has died (the rendezvous store it hosts at {}:{} is unreachable)", env.master_addr,
                         env.master_port);
    }
  }

  // Runs the collectives `start` launches and waits for them all, within the timeout.
  template <typename Fn>
  void run(const char* what, Fn&& start) {
    enter(what);
    const auto t0 = std::chrono::steady_clock::now();
    try {
      std::vector<c10::intrusive_ptr<c10d::Work>> works = start();
      for (auto& w : works) w->wait(timeout);
    } catch (const std::exception& e) {
      const std::string cause = diagnose(what);
      throw Error(fmt::format("{}: {} #{} did not complete (collective timeout {} s): {}; the backend said: {}",
                              where(), what, seq, timeout.count() / 1000.0, cause, first_line(e.what())));
    }
    waited_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  static std::string first_line(const std::string& s) {
    return s.substr(0, s.find('\n'));
  }

  // The process group of env's rank and size over `store` (the rendezvous through it).
  void join(const std::string& backend) {
    SignalMask mask;
    if (backend == "gloo") {
      auto go = c10d::ProcessGroupGloo::Options::create();
      go->timeout = timeout;
      go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, go);
    }
#ifdef USE_C10D_NCCL
    if (backend == "nccl") {
      // Without it, waiting on an NCCL operation in LibTorch 1.13 neither blocks nor times out.
      setenv("NCCL_BLOCKING_WAIT", "1", 0);
      auto no = c10d::ProcessGroupNCCL::Options::create();
      no->timeout = timeout;
      nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, no);
    }
#endif
  }

  // NCCL reduces only CUDA tensors: CPU ones travel through the device and back.
  bool staged(const at::Tensor& t) const {
    return device.is_cuda() && !t.is_cuda();
  }
};

Context::Context(Env env, std::string backend, std::unique_ptr<Impl> impl)
    : env_(std::move(env)), backend_(std::move(backend)), impl_(std::move(impl)) {}

Context::~Context() = default;

std::shared_ptr<Context> Context::single() {
  auto impl = std::make_unique<Impl>();
  return std::shared_ptr<Context>(new Context(Env{}, "none", std::move(impl)));
}

std::shared_ptr<Context> Context::create(const Env& env, const Options& options, at::Device device) {
  options.validate();
  auto impl = std::make_unique<Impl>();
  impl->env = env;
  impl->world_rank = env.rank;
  impl->world_size = env.world_size;
  impl->timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000.0));
  std::string backend = options.backend;
  if (backend == "auto") {
#ifdef USE_C10D_NCCL
    backend = device.is_cuda() ? "nccl" : "gloo";
#else
    (void)device;
    backend = "gloo";
#endif
  }
#ifndef USE_C10D_NCCL
  RLFT_CHECK(backend != "nccl", "distributed backend nccl: this LibTorch was built without NCCL (use gloo)");
#endif
  log::set_rank(env.rank, env.world_size);
  if (env.world_size == 1) return std::shared_ptr<Context>(new Context(env, backend, std::move(impl)));
  // A write to a peer that has died must be an error naming it, not SIGPIPE ending this process
  // without a word.
  ::signal(SIGPIPE, SIG_IGN);

  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = static_cast<std::size_t>(env.world_size);
  so.waitWorkers = false;
  so.timeout = impl->timeout;
  try {
    c10::intrusive_ptr<c10d::TCPStore> tcp;
    {
      SignalMask mask;
      tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    }
    tcp->waitForWorkers();
    impl->store = tcp;
    impl->base_store = tcp;
  } catch (const std::exception& e) {
    throw Error(fmt::format("rank {}/{}: rendezvous at {}:{} did not complete within {} s: {}", env.rank,
                            env.world_size, env.master_addr, env.master_port, options.timeout_s,
                            Impl::first_line(e.what())));
  }
  if (backend == "nccl") impl->device = device;
  impl->join(backend);
  {
    SignalMask mask;  // the heartbeat thread never takes a stop signal either
    impl->start_heartbeat();
  }
  log::info("joined {} process group: rank {}/{} (local {}/{}) via {}:{} ({}), collective timeout {} s", backend,
            env.rank, env.world_size, env.local_rank, env.local_world_size, env.master_addr, env.master_port,
            env.launcher, options.timeout_s);
  return std::shared_ptr<Context>(new Context(env, backend, std::move(impl)));
}

void Context::all_reduce_sum(std::vector<at::Tensor>& tensors) {
  if (env_.world_size == 1 || tensors.empty()) return;
  std::vector<at::Tensor> io;
  for (const auto& t : tensors) io.push_back(impl_->staged(t) ? t.to(impl_->device) : t);
  impl_->run("all_reduce", [&] {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& t : io) {
      std::vector<at::Tensor> one{t};
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::SUM;
      o.timeout = impl_->timeout;
      works.push_back(impl_->group([&](auto& pg) { return pg.allreduce(one, o); }));
    }
    return works;
  });
  for (size_t i = 0; i < tensors.size(); ++i)
    if (!io[i].is_same(tensors[i])) tensors[i].copy_(io[i]);
}

std::vector<double> Context::sum(const std::vector<double>& values) {
  if (env_.world_size == 1 || values.empty()) return values;
  std::vector<at::Tensor> t{at::tensor(values, at::kDouble)};
  all_reduce_sum(t);
  return {t[0].data_ptr<double>(), t[0].data_ptr<double>() + t[0].numel()};
}

std::vector<double> Context::max(const std::vector<double>& values) {
  if (env_.world_size == 1 || values.empty()) return values;
  const auto all = all_gather(values);
  std::vector<double> out = values;
  for (size_t i = 0; i < all.size(); ++i) out[i % values.size()] = std::max(out[i % values.size()], all[i]);
  return out;
}

std::vector<double> Context::all_gather(const std::vector<double>& values) {
  if (env_.world_size == 1) return values;
  // The values' bytes through all_gather_string: lengths may differ between ranks.
  const std::string mine(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(double));
  std::vector<double> out;
  for (const auto& bytes : all_gather_string(mine)) {
    const size_t n = bytes.size() / sizeof(double);
    out.resize(out.size() + n);
    std::memcpy(out.data() + out.size() - n, bytes.data(), bytes.size());
  }
  return out;
}

void Context::broadcast(at::Tensor& tensor, int root) {
  std::vector<at::Tensor> v{tensor};
  broadcast(v, root);
}

void Context::broadcast(std::vector<at::Tensor>& tensors, int root) {
  if (env_.world_size == 1 || tensors.empty()) return;
  // Small tensors travel together: each operation costs a round trip (a model's ~100 tensors
  // one by one took 27 ms of a 3 ms broadcast), so runs of tensors of one dtype and device go
  // flattened in buckets of up to 64 MiB; a larger tensor goes as it is.
  constexpr int64_t kBucketBytes = int64_t{64} << 20;
  std::vector<std::vector<size_t>> buckets;  // indices into tensors, in order
  int64_t filled = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    const int64_t bytes = static_cast<int64_t>(t.nbytes());
    const bool joins = !buckets.empty() && filled + bytes <= kBucketBytes &&
                       tensors[buckets.back().front()].scalar_type() == t.scalar_type() &&
                       tensors[buckets.back().front()].device() == t.device();
    if (!joins) buckets.emplace_back(), filled = 0;
    buckets.back().push_back(i);
    filled += bytes;
  }
  std::vector<at::Tensor> io;  // one per bucket
  for (const auto& b : buckets) {
    at::Tensor t;
    if (b.size() == 1) {
      t = tensors[b[0]];
    } else if (rank() == root) {
      std::vector<at::Tensor> parts;
      for (const size_t i : b) parts.push_back(tensors[i].reshape({-1}));
      t = at::cat(parts);
    } else {
      int64_t n = 0;
      for (const size_t i : b) n += tensors[i].numel();
      t = at::empty({n}, tensors[b[0]].options());
    }
    io.push_back(impl_->staged(t) ? t.to(impl_->device) : t);
  }
  impl_->run("broadcast", [&] {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& t : io) {
      std::vector<at::Tensor> one{t};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      o.timeout = impl_->timeout;
      works.push_back(impl_->group([&](auto& pg) { return pg.broadcast(one, o); }));
    }
    return works;
  });
  if (rank() == root) return;  // its tensors are what was sent
  for (size_t k = 0; k < buckets.size(); ++k) {
    int64_t offset = 0;
    for (const size_t i : buckets[k]) {
      auto& t = tensors[i];
      if (io[k].is_same(t)) continue;
      t.copy_(buckets[k].size() == 1 ? io[k] : io[k].narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

void Context::broadcast_string(std::string& value, int root) {
  if (env_.world_size == 1) return;
  at::Tensor length = at::full({1}, rank() == root ? static_cast<int64_t>(value.size()) : 0, at::kLong);
  broadcast(length, root);
  const int64_t n = length.item<int64_t>();
  at::Tensor bytes = at::zeros({std::max<int64_t>(1, n)}, at::kByte);
  if (rank() == root && n > 0) std::memcpy(bytes.data_ptr(), value.data(), static_cast<size_t>(n));
  broadcast(bytes, root);
  value.assign(static_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(n));
}

void Context::barrier() {
  if (env_.world_size == 1) return;
  // A barrier as an all-reduce of one value: the same code path and timeout on every backend.
  std::vector<at::Tensor> one{at::ones({1}, at::TensorOptions().dtype(at::kFloat).device(impl_->device))};
  impl_->run("barrier", [&] {
    c10d::AllreduceOptions o;
    o.timeout = impl_->timeout;
    return std::vector<c10::intrusive_ptr<c10d::Work>>{impl_->group([&](auto& pg) { return pg.allreduce(one, o); })};
  });
}

std::vector<std::string> Context::all_gather_string(const std::string& value) {
  if (env_.world_size == 1) return {value};
  // Lengths first, then the bytes padded to the longest: two all-reduces of rank-slotted buffers.
  at::Tensor lengths = at::zeros({world_size()}, at::kLong);
  lengths[rank()] = static_cast<int64_t>(value.size());
  std::vector<at::Tensor> v{lengths};
  all_reduce_sum(v);
  const int64_t longest = lengths.max().item<int64_t>();
  at::Tensor bytes = at::zeros({world_size(), std::max<int64_t>(1, longest)}, at::kByte);
  if (!value.empty()) std::memcpy(bytes[rank()].data_ptr(), value.data(), value.size());
  std::vector<at::Tensor> b{bytes};
  all_reduce_sum(b);
  std::vector<std::string> out;
  for (int r = 0; r < world_size(); ++r)
    out.emplace_back(static_cast<const char*>(bytes[r].data_ptr()),
                     static_cast<std::size_t>(lengths[r].item<int64_t>()));
  return out;
}

void Context::check_consistent(const std::string& what, const std::string& value) {
  const auto all = all_gather_string(value);
  std::vector<int> differ;
  for (int r = 0; r < world_size(); ++r)
    if (all[static_cast<std::size_t>(r)] != all[0]) differ.push_back(r);
  RLFT_CHECK(differ.empty(), "{} differs between ranks: rank 0 has {}, rank(s) {} differ (rank {} has {})", what,
             all[0], fmt::join(differ, ", "), differ.empty() ? 0 : differ[0],
             differ.empty() ? "" : all[static_cast<std::size_t>(differ[0])]);
}

void Context::raise_errors(const std::string& what, const std::string& error) {
  const auto all = all_gather_string(error);
  if (!error.empty()) return;  // the caller rethrows its own error
  for (int r = 0; r < world_size(); ++r)
    if (!all[static_cast<size_t>(r)].empty())
      throw Error(fmt::format("rank {} failed to {}: {}", r, what, all[static_cast<size_t>(r)]));
}

double Context::take_collective_seconds() {
  const double s = impl_->waited_s;
  impl_->waited_s = 0.0;
  return s;
}

int Context::global_rank() const {
  return impl_->world_rank;
}

std::shared_ptr<Context> Context::subgroup(const std::string& name, const std::vector<int>& ranks) {
  RLFT_CHECK(impl_->group_name.empty(), "a subgroup is made from the whole world's context, not from group {}",
             impl_->group_name);
  const auto me = std::find(ranks.begin(), ranks.end(), rank());
  RLFT_CHECK(me != ranks.end() && std::is_sorted(ranks.begin(), ranks.end()) && ranks.back() < world_size(),
             "subgroup {}: ranks [{}] must be ascending global ranks below {} and include this rank {}", name,
             fmt::join(ranks, ", "), world_size(), rank());
  auto impl = std::make_unique<Impl>();
  impl->env = env_;
  impl->env.rank = static_cast<int>(me - ranks.begin());
  impl->env.world_size = static_cast<int>(ranks.size());
  impl->group_name = name;
  impl->members = ranks;
  impl->world_rank = impl_->world_rank;
  impl->world_size = impl_->world_size;
  impl->timeout = impl_->timeout;
  impl->device = impl_->device;
  impl->base_store = impl_->base_store;
  if (ranks.size() > 1) {
    impl->store = c10::make_intrusive<c10d::PrefixStore>("rlft/group/" + name, impl_->base_store);
    try {
      impl->join(backend_);
    } catch (const std::exception& e) {
      throw Error(fmt::format("{}: joining the {} group (ranks {}) failed: {}", impl_->where(), name,
                              fmt::join(ranks, ", "), Impl::first_line(e.what())));
    }
  }
  Env env = impl->env;
  return std::shared_ptr<Context>(new Context(env, backend_, std::move(impl)));
}

namespace {

// A store call that failed: on a rank other than 0, the store's host (rank 0) is gone.
[[noreturn]] void store_failed(int world_rank, const Env& env, const std::string& where, const std::string& what,
                               const std::exception& e) {
  const std::string cause = e.what();
  if (world_rank == 0)
    throw Error(
        fmt::format("{}: the store failed while this rank {}: {}", where, what, cause.substr(0, cause.find('\n'))));
  throw Error(fmt::format("{}: rank 0 has died (the store it hosts at {}:{} is unreachable) while this rank {}", where,
                          env.master_addr, env.master_port, what));
}

}  // namespace

void Context::put(const std::string& key, const std::string& bytes) {
  RLFT_CHECK(impl_->base_store, "store messages need a multi-rank world");
  // In chunks of at most 4 MiB (a store server may refuse larger values): chunks 1.. under
  // key#i first, then the count and chunk 0 under `key`, which take() waits for.
  constexpr size_t kChunk = size_t{4} << 20;
  const int64_t chunks = std::max<int64_t>(1, static_cast<int64_t>((bytes.size() + kChunk - 1) / kChunk));
  auto chunk = [&](int64_t i) {
    const size_t begin = static_cast<size_t>(i) * kChunk;
    return std::vector<uint8_t>(bytes.begin() + static_cast<std::ptrdiff_t>(std::min(begin, bytes.size())),
                                bytes.begin() + static_cast<std::ptrdiff_t>(std::min(begin + kChunk, bytes.size())));
  };
  try {
    for (int64_t i = 1; i < chunks; ++i) impl_->base_store->set(fmt::format("{}#{}", key, i), chunk(i));
    auto head = chunk(0);
    head.insert(head.begin(), reinterpret_cast<const uint8_t*>(&chunks),
                reinterpret_cast<const uint8_t*>(&chunks) + sizeof chunks);
    impl_->base_store->set(key, head);
  } catch (const std::exception& e) {
    store_failed(impl_->world_rank, env_, impl_->where(), "wrote " + key, e);
  }
}

bool Context::has(const std::string& key) {
  RLFT_CHECK(impl_->base_store, "store messages need a multi-rank world");
  try {
    return impl_->base_store->check({key});
  } catch (const std::exception& e) {
    store_failed(impl_->world_rank, env_, impl_->where(), "looked for " + key, e);
  }
}

std::string Context::take(const std::string& key, int from, const std::string& what) {
  RLFT_CHECK(impl_->base_store, "store messages need a multi-rank world");
  auto& store = *impl_->base_store;
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto beat_seen = t0, warned = t0;
  int64_t beat = -1;
  try {
    // Polled, not store.wait(): a wait that times out leaves a reply on the connection.
    for (int polls = 0; !store.check({key}); ++polls) {
      const auto now = Clock::now();
      if (polls % 16 == 0) {  // every 16 polls: at most 0.08 s apart
        const int64_t b = store.add(heartbeat_key(from), 0);
        if (b != beat) beat = b, beat_seen = now;
      }
      if (now - beat_seen > std::chrono::seconds(3))
        throw Error(
            fmt::format("{}: rank {} has died or is frozen (no heartbeat for 3 s) while this rank waited for {}",
                        impl_->where(), from, what));
      // A message may take a whole step to come (a rollout, a training step with its
      // evaluation): no deadline while the writer is alive, a warning every timeout.
      if (now - warned > impl_->timeout) {
        warned = now;
        log::warn("{}: still waiting for {} from rank {} (alive) after {:.0f} s", impl_->where(), what, from,
                  std::chrono::duration<double>(now - t0).count());
      }
      // Each poll wakes rank 0's store thread, beside its training: quick polls for the first
      // 25 ms (a message about to arrive), then 5 ms apart.
      std::this_thread::sleep_for(std::chrono::microseconds(polls < 50 ? 500 : 5000));
    }
    // put()'s chunks: the count first, then chunk 0 under `key`, the others (written before
    // it) under key#i.
    const auto head = store.get(key);
    store.deleteKey(key);
    RLFT_CHECK(head.size() >= sizeof(int64_t), "store message {}: no chunk count", key);
    int64_t chunks = 0;
    std::memcpy(&chunks, head.data(), sizeof chunks);
    std::string out(head.begin() + sizeof chunks, head.end());
    for (int64_t i = 1; i < chunks; ++i) {
      const std::string part = fmt::format("{}#{}", key, i);
      const auto bytes = store.get(part);
      store.deleteKey(part);
      out.append(bytes.begin(), bytes.end());
    }
    return out;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    store_failed(impl_->world_rank, env_, impl_->where(), "waited for " + what, e);
  }
}

std::string tensors_hash(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  // FNV-1a over 64-bit words (bytes for the tail): fast enough for every weight of a model.
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](uint64_t w) {
    h ^= w;
    h *= 1099511628211ULL;
  };
  auto mix_bytes = [&](const unsigned char* p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      mix(w);
    }
    for (; i < n; ++i) mix(p[i]);
  };
  for (const auto& [name, tensor] : tensors) {
    mix_bytes(reinterpret_cast<const unsigned char*>(name.data()), name.size());
    const auto t = tensor.detach().to(at::kCPU).contiguous();
    mix(static_cast<uint64_t>(t.scalar_type()));
    for (const int64_t d : t.sizes()) mix(static_cast<uint64_t>(d));
    mix_bytes(static_cast<const unsigned char*>(t.data_ptr()), static_cast<size_t>(t.nbytes()));
  }
  return fmt::format("{:016x}", h);
}

}  // namespace rlft::dist
