// GradientSync with two real ranks on loopback: gradients summed over ranks in buckets, a
// gradient only one rank produced reaches the other, one no rank produced stays undefined.
#include "rl/grad_sync.h"

#include <doctest/doctest.h>

#include "tests/support/ranks.h"
// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

TEST_CASE("grad sync rank" * doctest::skip()) {
  auto ctx = rlft::dist::Context::create(rlft::dist::Env::from_environment(), rlft::dist::Options{});
  const int r = ctx->rank();
  std::vector<at::Tensor> params{at::zeros({3, 4}).requires_grad_(), at::zeros({2}).requires_grad_(),
                                 at::zeros({1000}).requires_grad_(), at::zeros({5}).requires_grad_()};
  params[0].mutable_grad() = at::full({3, 4}, static_cast<float>(r + 1));  // both ranks: 1 + 2
  if (r == 1) params[1].mutable_grad() = at::full({2}, 7.0f);              // only rank 1
  params[2].mutable_grad() = at::arange(1000, at::kFloat) * static_cast<float>(r + 1);
  // params[3]: no rank.
  // Buckets of 0.001 MiB (1048 bytes), filled in reverse order: the 4000-byte gradient alone,
  // then the two small ones together.
  rlft::rl::GradientSync sync(*ctx, params, 0.001);
  const auto report = sync.sync();
  CHECK(report.buckets == 2);
  CHECK(report.bytes == (12 + 1000 + 2) * 4);
  CHECK(at::equal(params[0].grad(), at::full({3, 4}, 3.0f)));
  REQUIRE(params[1].grad().defined());
  CHECK(at::equal(params[1].grad(), at::full({2}, 7.0f)));
  CHECK(at::equal(params[2].grad(), at::arange(1000, at::kFloat) * 3.0f));
  CHECK_FALSE(params[3].grad().defined());
}

TEST_CASE("gradients are summed over two ranks; one no rank produced stays undefined") {
  const auto results = rlft::test::run_ranks(2, "grad sync rank", "");
  for (const auto& p : results) CHECK_MESSAGE(p.exit_code == 0, p.out << p.err);
}
