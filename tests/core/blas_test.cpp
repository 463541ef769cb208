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

TEST_CASE("OpenMP threads wait passively unless the environment says otherwise") {
  auto r = rlft::test::run_rlft({"doctor", "--json", "--n", "64"}, {{"OPENBLAS_CORETYPE", "Haswell"}}, "",
                                {"OMP_WAIT_POLICY", "RLFT_NO_BLAS_REEXEC"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(nlohmann::json::parse(r.out)["blas"]["omp_wait_policy"] == "PASSIVE");
  auto kept = rlft::test::run_rlft({"doctor", "--json", "--n", "64"}, {{"OMP_WAIT_POLICY", "ACTIVE"}}, "",
                                   {"RLFT_NO_BLAS_REEXEC"});
  REQUIRE_MESSAGE(kept.exit_code == 0, kept.err);
  CHECK(nlohmann::json::parse(kept.out)["blas"]["omp_wait_policy"] == "ACTIVE");
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
