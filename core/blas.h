#pragma once
// The fast BLAS path. Debian's LibTorch calls the system BLAS (libblas.so.3). OpenBLAS
// misdetects some virtual CPUs as an ancient core and runs several times slower than it can;
// it reads OPENBLAS_CORETYPE once, when it is loaded. So a process that finds the variable
// unset picks the core type from the CPU's features and re-executes itself once, before it
// does anything else. A core type the environment already sets is never overridden.
//
// The same re-exec sets OMP_WAIT_POLICY=PASSIVE when it is unset (libgomp, too, reads it only
// at load). ATen's element-wise ops run on OpenMP threads and OpenBLAS's GEMMs on its own
// pthreads; with OpenMP's default policy the OpenMP threads spin for a while after every
// parallel op and take the cores from the GEMM that follows: on the 2-core development
// machine the MoE layer ran at 48% of the GEMM rate (forward) and 34% (forward+backward)
// with spinning, 86% and 82% passive.
//
// The other way round, OpenBLAS's threads spin after each GEMM for 2^28 cycles (~0.1 s) by
// default and take the cores from the OpenMP work that follows: the re-exec also sets
// OPENBLAS_THREAD_TIMEOUT=4 (2^4 cycles) when it is unset. A decode step, which alternates
// small GEMMs with OpenMP-threaded expert products, ran its routed experts in 31 ms instead
// of 54; large-GEMM benchmarks (`rlft bench model`) did not change.
//
// And glibc's malloc, which serves blocks above a threshold that moves with use by mmap and
// gives freed heap tops back to the system: a decode step's per-step tensors (logits and the
// sampling chain's [rows, V] temporaries, MB each) were mapped, faulted in page by page and
// returned every step. The re-exec sets MALLOC_MMAP_THRESHOLD_=32 MiB (the dynamic
// threshold's own ceiling, fixed) and MALLOC_TRIM_THRESHOLD_=128 MiB when unset: the
// DeepSeek-V3-shaped bench model decoded 32 sequences at 395 tokens/s before (lm_head 18.9
// and sampling 23.2 ms of an 81 ms step, 17% of the time in page faults) and 671 after.

#include <string>

namespace rlft::blas {

/// Call first thing in main(). May not return (re-exec). Does nothing when RLFT_NO_BLAS_REEXEC
/// is set, or when OMP_WAIT_POLICY, OPENBLAS_THREAD_TIMEOUT and the two MALLOC_ thresholds
/// are set and OPENBLAS_CORETYPE is set (or the CPU has neither AVX-512 nor AVX2).
void ensure_fast_path(int argc, char** argv);

/// The core type this CPU should use ("SKYLAKEX", "HASWELL"), or "" when there is none to set.
std::string preferred_core_type();

struct Info {
  std::string library;          ///< the shared object that provides sgemm_ (path)
  std::string vendor;           ///< "OpenBLAS", "reference BLAS" or "unknown"
  std::string config;           ///< openblas_get_config(), when OpenBLAS
  std::string core;             ///< openblas_get_corename(), when OpenBLAS
  std::string core_env;         ///< OPENBLAS_CORETYPE as this process sees it ("" when unset)
  std::string omp_wait_policy;  ///< OMP_WAIT_POLICY as this process sees it ("" when unset)
  std::string thread_timeout;   ///< OPENBLAS_THREAD_TIMEOUT as this process sees it ("" when unset)
  std::string mmap_threshold;   ///< MALLOC_MMAP_THRESHOLD_ as this process sees it ("" when unset)
  std::string trim_threshold;   ///< MALLOC_TRIM_THRESHOLD_ as this process sees it ("" when unset)
  int threads = 0;              ///< openblas_get_num_threads(), when OpenBLAS
};
/// Which BLAS this process actually uses.
Info info();

}  // namespace rlft::blas
