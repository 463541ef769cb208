#include "core/distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdlib>
#include <cstring>

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
  } else if (env_int("SLURM_NTASKS", e.world_size, 1, kMax)) {
    e.launcher = "slurm";
    RLFT_CHECK(env_int("SLURM_PROCID", e.rank, 0, kMax),
               "environment variable SLURM_PROCID is missing (SLURM_NTASKS is set)");
    if (!env_int("SLURM_LOCALID", e.local_rank, 0, kMax)) e.local_rank = e.rank;
    if (!env_int("SLURM_NTASKS_PER_NODE", e.local_world_size, 1, kMax)) e.local_world_size = e.world_size;
  }
  RLFT_CHECK(e.rank < e.world_size, "rank {} is not below the world size {} ({} variables)", e.rank, e.world_size,
             e.launcher);
  e.master_addr = env_str("MASTER_ADDR", e.master_addr);
  env_int("MASTER_PORT", e.master_port, 1, 65535);
  return e;
}

void Options::validate() const {
  RLFT_CHECK(backend == "auto" || backend == "gloo" || backend == "nccl",
             "unknown distributed backend '{}': known backends are auto, gloo, nccl", backend);
  RLFT_CHECK(timeout_s > 0, "distributed timeout = {} s: must be > 0", timeout_s);
}

struct Context::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef USE_C10D_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  std::chrono::milliseconds timeout{600000};

  template <typename Fn>
  void run(const char* what, int rank, int world, Fn&& start) {
    c10::intrusive_ptr<c10d::Work> work;
    try {
      work = start();
      work->wait(timeout);
    } catch (const std::exception& e) {
      throw Error(fmt::format("rank {}/{}: {} failed or timed out after {} ms (a peer rank may have died or hung): {}",
                              rank, world, what, timeout.count(), e.what()));
    }
  }
};

Context::Context(Env env, std::string backend, std::unique_ptr<Impl> impl)
    : env_(std::move(env)), backend_(std::move(backend)), impl_(std::move(impl)) {}

Context::~Context() = default;

std::shared_ptr<Context> Context::create(const Env& env, const Options& options, at::Device device) {
  options.validate();
  auto impl = std::make_unique<Impl>();
  impl->timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000.0));
  std::string backend = options.backend;
  if (backend == "auto") {
#ifdef USE_C10D_NCCL
    backend = device.is_cuda() ? "nccl" : "gloo";
#else
    backend = "gloo";
#endif
  }
#ifndef USE_C10D_NCCL
  RLFT_CHECK(backend != "nccl", "distributed backend nccl: this LibTorch was built without NCCL (use gloo)");
#endif
  log::set_rank(env.rank, env.world_size);
  if (env.world_size == 1) return std::shared_ptr<Context>(new Context(env, backend, std::move(impl)));

  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = static_cast<std::size_t>(env.world_size);
  so.waitWorkers = true;
  so.timeout = impl->timeout;
  try {
    impl->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  } catch (const std::exception& e) {
    throw Error(fmt::format("rank {}/{}: rendezvous at {}:{} did not complete within {} s: {}", env.rank,
                            env.world_size, env.master_addr, env.master_port, options.timeout_s, e.what()));
  }
  if (backend == "gloo") {
    auto go = c10d::ProcessGroupGloo::Options::create();
    go->timeout = impl->timeout;
    go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world_size, go);
  }
#ifdef USE_C10D_NCCL
  if (backend == "nccl") {
    auto no = c10d::ProcessGroupNCCL::Options::create();
    no->timeout = impl->timeout;
    impl->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, env.rank, env.world_size, no);
  }
#endif
  log::info("joined {} process group: rank {}/{} (local {}/{}) via {}:{} ({})", backend, env.rank, env.world_size,
            env.local_rank, env.local_world_size, env.master_addr, env.master_port, env.launcher);
  return std::shared_ptr<Context>(new Context(env, backend, std::move(impl)));
}

void Context::all_reduce_sum(std::vector<at::Tensor>& tensors) {
  if (env_.world_size == 1 || tensors.empty()) return;
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  o.timeout = impl_->timeout;
#ifdef USE_C10D_NCCL
  if (impl_->nccl)
    return impl_->run("all_reduce", rank(), world_size(), [&] { return impl_->nccl->allreduce(tensors, o); });
#endif
  impl_->run("all_reduce", rank(), world_size(), [&] { return impl_->gloo->allreduce(tensors, o); });
}

void Context::broadcast(at::Tensor& tensor, int root) {
  if (env_.world_size == 1) return;
  std::vector<at::Tensor> v{tensor};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  o.timeout = impl_->timeout;
#ifdef USE_C10D_NCCL
  if (impl_->nccl) return impl_->run("broadcast", rank(), world_size(), [&] { return impl_->nccl->broadcast(v, o); });
#endif
  impl_->run("broadcast", rank(), world_size(), [&] { return impl_->gloo->broadcast(v, o); });
}

void Context::barrier() {
  if (env_.world_size == 1) return;
  c10d::BarrierOptions o;
  o.timeout = impl_->timeout;
  // A barrier as an all-reduce of one value: the same code path and timeout on every backend.
  std::vector<at::Tensor> one{at::ones({1}, at::kFloat)};
  impl_->run("barrier", rank(), world_size(), [&] {
#ifdef USE_C10D_NCCL
    if (impl_->nccl) return impl_->nccl->allreduce(one);
#endif
    return impl_->gloo->allreduce(one);
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

}  // namespace rlft::dist
