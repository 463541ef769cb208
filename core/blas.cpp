#include "core/blas.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace rlft::blas {

std::string preferred_core_type() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "SKYLAKEX";
  if (__builtin_cpu_supports("avx2")) return "HASWELL";
#endif
  return "";
}

void ensure_fast_path(int argc, char** argv) {
  (void)argc;
  if (std::getenv("RLFT_NO_BLAS_REEXEC")) return;
  bool changed = false;
  // Sets `name` when the environment leaves it unset (and there is a value to set).
  auto set_default = [&changed](const char* name, const std::string& value) {
    if (std::getenv(name) || value.empty()) return;
    ::setenv(name, value.c_str(), 0);
    changed = true;
  };
  set_default("OPENBLAS_CORETYPE", preferred_core_type());
  set_default("OMP_WAIT_POLICY", "PASSIVE");
  set_default("OPENBLAS_THREAD_TIMEOUT", "4");  // 2^4 cycles: sleep at once after a GEMM
  // glibc's malloc: blocks under 32 MiB from the heap, freed memory kept up to 128 MiB.
  set_default("MALLOC_MMAP_THRESHOLD_", "33554432");
  set_default("MALLOC_TRIM_THRESHOLD_", "134217728");
  if (!changed) return;
  ::setenv("RLFT_NO_BLAS_REEXEC", "1", 1);  // exactly one re-exec, whatever happens next
  ::execv("/proc/self/exe", argv);
  // exec failed (no /proc?): carry on with the slow path rather than not at all.
}

Info info() {
  Info out;
  if (const char* env = std::getenv("OPENBLAS_CORETYPE")) out.core_env = env;
  if (const char* env = std::getenv("OMP_WAIT_POLICY")) out.omp_wait_policy = env;
  if (const char* env = std::getenv("OPENBLAS_THREAD_TIMEOUT")) out.thread_timeout = env;
  if (const char* env = std::getenv("MALLOC_MMAP_THRESHOLD_")) out.mmap_threshold = env;
  if (const char* env = std::getenv("MALLOC_TRIM_THRESHOLD_")) out.trim_threshold = env;
  void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info dl{};
  if (sgemm && dladdr(sgemm, &dl) && dl.dli_fname) out.library = dl.dli_fname;
  using str_fn = char* (*)();
  using int_fn = int (*)();
  // OpenBLAS's own entry points count only when the library that serves sgemm_ has them.
  void* lib = out.library.empty() ? nullptr : dlopen(out.library.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  void* scope = lib ? lib : RTLD_DEFAULT;
  auto get_config = reinterpret_cast<str_fn>(dlsym(scope, "openblas_get_config"));
  auto get_core = reinterpret_cast<str_fn>(dlsym(scope, "openblas_get_corename"));
  auto get_threads = reinterpret_cast<int_fn>(dlsym(scope, "openblas_get_num_threads"));
  if (get_config) {
    out.vendor = "OpenBLAS";
    out.config = get_config();
    if (get_core) out.core = get_core();
    if (get_threads) out.threads = get_threads();
  } else if (out.library.find("/blas/") != std::string::npos || out.library.find("libblas.so") != std::string::npos) {
    out.vendor = "reference BLAS";
  } else {
    out.vendor = sgemm ? "unknown" : "none found";
  }
  if (lib) dlclose(lib);
  return out;
}

}  // namespace rlft::blas
