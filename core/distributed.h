#pragma once
// The distributed context: c10d process groups (Gloo on CPU, NCCL on CUDA) set up from the
// variables torchrun and SLURM export, rendezvous through a TCPStore, and a timeout on every
// collective, so a dead or hung rank is an error on the others, never a hang.
//
// A world of one needs no process group: every collective is then the identity.

#include <ATen/ATen.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

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
  /// `rlft launch`), else SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE
  /// (with MASTER_ADDR/MASTER_PORT or defaults), else a world of one. Throws rlft::Error
  /// naming the variable for a value that is not a number or out of range.
  static Env from_environment();
};

struct Options {
  std::string backend = "auto";  ///< auto (NCCL for a CUDA device when built with it, else Gloo) | gloo | nccl
  double timeout_s = 600.0;      ///< bound on rendezvous and on every collective (> 0)
  void validate() const;
};

class Context {
 public:
  /// Joins the process group `env` describes. Throws rlft::Error naming the master address
  /// when the rendezvous does not complete within the timeout.
  static std::shared_ptr<Context> create(const Env& env, const Options& options, at::Device device = at::kCPU);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }
  const Env& env() const { return env_; }
  const std::string& backend() const { return backend_; }

  /// In-place sum over ranks of each tensor (same shapes and dtypes on every rank).
  void all_reduce_sum(std::vector<at::Tensor>& tensors);
  /// In place: every rank receives `root`'s tensor.
  void broadcast(at::Tensor& tensor, int root = 0);
  void barrier();
  /// Every rank's string, in rank order.
  std::vector<std::string> all_gather_string(const std::string& value);
  /// Fails on every rank, naming the ranks that differ, unless all ranks hold the same
  /// `value` (a config hash, a weights hash …). `what` names it in the message.
  void check_consistent(const std::string& what, const std::string& value);

 private:
  struct Impl;
  Context(Env env, std::string backend, std::unique_ptr<Impl> impl);
  Env env_;
  std::string backend_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rlft::dist
