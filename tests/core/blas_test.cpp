// The process runs on the fast BLAS path by itself, and that path computes right.
#include "core/blas.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process.h"

TEST_CASE("with OPENBLAS_CORETYPE unset, rlft picks the CPU's core type by itself") {
  const std::string want = rlft::blas::preferred_core_type();
  if (want.empty()) {
    MESSAGE("this CPU has neither AVX-512 nor AVX2: nothing to pick");
    return;
  }
  auto r =
      rlft::test::run_rlft({"doctor", "--json", "--n", "64"}, {}, "", {"OPENBLAS_CORETYPE", "RLFT_NO_BLAS_REEXEC"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["blas"]["coretype_env"] == want);
  if (j["blas"]["vendor"] == "OpenBLAS") {
    CHECK(j["blas"]["core"] != "Prescott");
    CHECK(j["blas"]["core"] != "");
  }
}

TEST_CASE("a core type the environment sets is never overridden") {
  auto r = rlft::test::run_rlft({"doctor", "--json", "--n", "64"}, {{"OPENBLAS_CORETYPE", "Haswell"}}, "",
                                {"RLFT_NO_BLAS_REEXEC"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(nlohmann::json::parse(r.out)["blas"]["coretype_env"] == "Haswell");
}

TEST_CASE("the thread-wait settings rlft sets are defaults the environment overrides") {
  struct Row {
    const char* variable;    // environment variable
    const char* json_key;    // its value in `doctor --json` under "blas"
    const char* rlft_value;  // what rlft sets when it is unset
    const char* user_value;  // a value the user sets, which must be kept
  };
  // OpenMP threads wait passively; OpenBLAS threads sleep right after a GEMM; malloc keeps
  // a decode step's temporaries on its heap.
  for (const Row row : {Row{"OMP_WAIT_POLICY", "omp_wait_policy", "PASSIVE", "ACTIVE"},
                        Row{"OPENBLAS_THREAD_TIMEOUT", "thread_timeout", "4", "20"},
                        Row{"MALLOC_MMAP_THRESHOLD_", "malloc_mmap_threshold", "33554432", "1048576"},
                        Row{"MALLOC_TRIM_THRESHOLD_", "malloc_trim_threshold", "134217728", "1048576"}}) {
    CAPTURE(row.variable);
    auto unset = rlft::test::run_rlft({"doctor", "--json", "--n", "64"}, {{"OPENBLAS_CORETYPE", "Haswell"}}, "",
                                      {row.variable, "RLFT_NO_BLAS_REEXEC"});
    REQUIRE_MESSAGE(unset.exit_code == 0, unset.err);
    CHECK(nlohmann::json::parse(unset.out)["blas"][row.json_key] == row.rlft_value);
    auto kept = rlft::test::run_rlft({"doctor", "--json", "--n", "64"}, {{row.variable, row.user_value}}, "",
                                     {"RLFT_NO_BLAS_REEXEC"});
    REQUIRE_MESSAGE(kept.exit_code == 0, kept.err);
    CHECK(nlohmann::json::parse(kept.out)["blas"][row.json_key] == row.user_value);
  }
}

TEST_CASE("this test process uses OpenBLAS and its GEMM matches a plain triple loop") {
  const auto info = rlft::blas::info();
  CHECK(info.vendor == "OpenBLAS");
  CHECK(info.core != "Prescott");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const int64_t m = 67, k = 129, n = 45;  // odd sizes exercise the kernels' edge paths
  auto a = at::randn({m, k}, gen, at::kDouble).to(at::kFloat);
  auto b = at::randn({k, n}, gen, at::kDouble).to(at::kFloat);
  auto c = at::mm(a, b);
  auto ad = a.to(at::kDouble), bd = b.to(at::kDouble);
  double max_err = 0;
  auto A = ad.accessor<double, 2>(), B = bd.accessor<double, 2>();
  auto C = c.accessor<float, 2>();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += A[i][p] * B[p][j];
      max_err = std::max(max_err, std::abs(s - double(C[i][j])));
    }
  CHECK(max_err < 1e-3);
}
