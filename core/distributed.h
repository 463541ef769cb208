#pragma once
// The distributed context: c10d process groups (Gloo on CPU, NCCL on CUDA) set up from the
// variables torchrun, SLURM and `rlft launch` export, rendezvous through a TCPStore, and a
// timeout on every collective, so a dead or hung rank is an error on the others, never a hang.
//
// Failure diagnosis: every rank beats a heartbeat counter in the store (its own connection,
// twice a second) and records, before each collective, its sequence number and name. When a
// collective fails or times out, the rank reads both back and names the peers that stopped
// beating (died) or that never reached this collective (hung or elsewhere); when the store
// itself is gone, rank 0 (which hosts it) has died.
//
// A world of one needs no process group: every collective is then the identity.
//
// Subgroups (distributed.rollout_ranks: the trainer ranks, and rank 0 with the rollout ranks)
// are process groups of their own over the same store; their failures name global ranks. The
// store also carries messages between ranks (put/take): a rank waiting for one fails, naming
// the writer, as soon as the writer's heartbeat stops.

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace rlft {
class ConfigView;
}

namespace rlft::dist {

/// Where this process stands in the job, as its launcher described it.
struct Env {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  ///< "torchrun" (RANK/WORLD_SIZE…), "slurm" (SLURM_PROCID…) or "none"

  /// Reads RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (torchrun,
  /// `rlft launch`), else, in an srun step, SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID,
  /// SLURM_NTASKS_PER_NODE
  /// (with MASTER_ADDR/MASTER_PORT or defaults), else a world of one. Throws rlft::Error
  /// naming the variable for a value that is not a number or out of range.
  static Env from_environment();
};

struct Options {
  std::string backend = "auto";  ///< auto (NCCL for a CUDA device when built with it, else Gloo) | gloo | nccl
  double timeout_s = 600.0;      ///< bound on rendezvous and on every collective (> 0)
  /// Reads `backend` and `timeout_s` of the `distributed:` section (both optional).
  static Options from_config(const ConfigView& section);
  void validate() const;  ///< throws rlft::OptionError naming the field
};

class Context {
 public:
  /// Joins the process group `env` describes. Throws rlft::Error naming the master address
  /// when the rendezvous does not complete within the timeout.
  static std::shared_ptr<Context> create(const Env& env, const Options& options, at::Device device = at::kCPU);
  /// A world of one (no process group).
  static std::shared_ptr<Context> single();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }
  const Env& env() const { return env_; }
  const std::string& backend() const { return backend_; }

  /// In place: each tensor summed over ranks (each its own all-reduce, all in flight together;
  /// the same shapes and dtypes on every rank).
  void all_reduce_sum(std::vector<at::Tensor>& tensors);
  /// Element-wise sum over ranks of equal-length vectors.
  std::vector<double> sum(const std::vector<double>& values);
  double sum(double value) { return sum(std::vector<double>{value})[0]; }
  /// Element-wise maximum over ranks.
  std::vector<double> max(const std::vector<double>& values);
  /// True on every rank when `flag` is true on any.
  bool any(bool flag) { return sum(flag ? 1.0 : 0.0) > 0; }
  /// Every rank's values concatenated in rank order (lengths may differ).
  std::vector<double> all_gather(const std::vector<double>& values);
  /// In place: every rank receives `root`'s tensor.
  void broadcast(at::Tensor& tensor, int root = 0);
  /// In place, each tensor from `root` (runs of small tensors of one dtype flattened together).
  void broadcast(std::vector<at::Tensor>& tensors, int root = 0);
  /// In place: every rank receives `root`'s string.
  void broadcast_string(std::string& value, int root = 0);
  void barrier();
  /// Every rank's string, in rank order.
  std::vector<std::string> all_gather_string(const std::string& value);
  /// Fails on every rank, naming the ranks that differ, unless all ranks hold the same
  /// `value` (a config hash, a weights hash …). `what` names it in the message.
  void check_consistent(const std::string& what, const std::string& value);

  /// Runs `fn` on every rank; an error on any rank is raised on all of them, naming the
  /// ranks that failed, so no rank goes on to wait for a peer that has already given up.
  template <typename Fn>
  void together(const std::string& what, Fn&& fn) {
    if (world_size() == 1) return fn();
    std::exception_ptr error;
    std::string message;
    try {
      fn();
    } catch (const std::exception& e) {
      error = std::current_exception();
      message = *e.what() ? e.what() : "failed";
    }
    raise_errors(what, message);  // on the ranks that did not fail
    if (error) std::rethrow_exception(error);
  }
  /// together() for work only rank 0 does (what touches the run directory or the store).
  template <typename Fn>
  void on_main(const std::string& what, Fn&& fn) {
    together(what, [&] {
      if (is_main()) fn();
    });
  }

  /// Seconds spent waiting in collectives since the last call (the time/allreduce metric).
  double take_collective_seconds();

  /// A process group of some of this world's ranks, for collectives among them alone:
  /// `ranks` are global ranks, ascending, this rank among them; `name` keeps its store keys
  /// apart. Every rank in `ranks` calls it with the same arguments and no other rank does.
  /// Its rank() is this rank's index in `ranks`; its errors name global ranks. Call it on the
  /// whole world's context.
  std::shared_ptr<Context> subgroup(const std::string& name, const std::vector<int>& ranks);
  /// This process's rank in the whole world (rank() for the world's context).
  int global_rank() const;

  /// Store messages (the whole world's context only). put(): sets `key` to `bytes` (in chunks
  /// of at most 4 MiB; read them with take()).
  void put(const std::string& key, const std::string& bytes);
  /// Whether `key` is set now.
  bool has(const std::string& key);
  /// Waits for `key`, to be written by global rank `from` with put(), then returns its bytes
  /// and deletes it. A message may take a whole step to come: there is no deadline while
  /// `from` is alive (a warning every timeout_s); throws rlft::Error naming `from` when its
  /// heartbeat stops for 3 s (it died or froze) or when the store is gone (rank 0 died); `what`
  /// says what was awaited.
  std::string take(const std::string& key, int from, const std::string& what);

 private:
  struct Impl;
  Context(Env env, std::string backend, std::unique_ptr<Impl> impl);
  /// Gathers every rank's error message ("" = none); throws one naming the first failed
  /// rank on each rank that did not fail itself.
  void raise_errors(const std::string& what, const std::string& error);
  Env env_;
  std::string backend_;
  std::unique_ptr<Impl> impl_;
};

/// A 64-bit hash (hex) of named tensors: names, dtypes, shapes and bytes. Equal weights give
/// equal hashes on every rank (the initial-weights check).
std::string tensors_hash(const std::vector<std::pair<std::string, at::Tensor>>& tensors);

}  // namespace rlft::dist
