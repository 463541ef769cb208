#pragma once
// The fast BLAS path. Debian's LibTorch calls the system BLAS (libblas.so.3). OpenBLAS
// misdetects some virtual CPUs as an ancient core and runs several times slower than it can;
// it reads OPENBLAS_CORETYPE once, when it is loaded. So a process that finds the variable
// unset picks the core type from the CPU's features and re-executes itself once, before it
// does anything else. A core type the environment already sets is never overridden.

#include <string>

namespace rlft::blas {

/// Call first thing in main(). May not return (re-exec). Does nothing when
/// OPENBLAS_CORETYPE is set, when RLFT_NO_BLAS_REEXEC is set, or when the CPU has neither
/// AVX-512 nor AVX2.
void ensure_fast_path(int argc, char** argv);

/// The core type this CPU should use ("SKYLAKEX", "HASWELL"), or "" when there is none to set.
std::string preferred_core_type();

struct Info {
  std::string library;   ///< the shared object that provides sgemm_ (path)
  std::string vendor;    ///< "OpenBLAS", "reference BLAS" or "unknown"
  std::string config;    ///< openblas_get_config(), when OpenBLAS
  std::string core;      ///< openblas_get_corename(), when OpenBLAS
  std::string core_env;  ///< OPENBLAS_CORETYPE as this process sees it ("" when unset)
  int threads = 0;       ///< openblas_get_num_threads(), when OpenBLAS
};
/// Which BLAS this process actually uses.
Info info();

}  // namespace rlft::blas
