#include "rl/optimizer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "core/error.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

using namespace rlft::rl;

namespace {

struct Toy {
  at::Tensor w, b;  // [4, 3], [4]
  explicit Toy(uint64_t seed) {
    auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
    w = at::randn({4, 3}, g, at::kFloat).requires_grad_(true);
    b = at::randn({4}, g, at::kFloat).requires_grad_(true);
  }
  std::vector<std::pair<std::string, at::Tensor>> params() { return {{"w", w}, {"b", b}}; }
  void backward(int step) {
    auto x = at::full({3}, 0.1f * static_cast<float>(step + 1));
    ((at::mv(w, x) + b).pow(2).sum()).backward();
  }
};

}  // namespace

TEST_CASE("saving and loading the optimizer state continues bitwise") {
  OptimizerOptions o;
  o.weight_decay = 0.1;
  Toy a(1), b(1);
  Optimizer oa(a.params(), o);
  for (int s = 0; s < 3; ++s) a.backward(s), oa.step(1e-2);

  Optimizer ob(b.params(), o);
  b.backward(0);
  ob.step(1e-2);
  const std::string state = ob.save_state();
  Optimizer resumed(b.params(), o);
  resumed.load_state(state);
  for (int s = 1; s < 3; ++s) b.backward(s), resumed.step(1e-2);
  CHECK(at::equal(a.w, b.w));
  CHECK(at::equal(a.b, b.b));
  CHECK_THROWS_AS(resumed.load_state("not an archive"), rlft::Error);
}

TEST_CASE("matrices are decayed, vectors are not") {
  Toy t(2);
  OptimizerOptions o;
  o.weight_decay = 0.5;
  Optimizer opt(t.params(), o);
  CHECK(opt.n_decayed() == 1);
  CHECK(opt.n_not_decayed() == 1);
  // With zero gradients AdamW moves only by decay: w ← w·(1 − lr·wd), b unchanged.
  const auto w0 = t.w.detach().clone(), b0 = t.b.detach().clone();
  t.w.mutable_grad() = at::zeros_like(t.w);
  t.b.mutable_grad() = at::zeros_like(t.b);
  opt.step(0.1);
  CHECK(at::allclose(t.w, w0 * (1 - 0.1 * 0.5)));
  CHECK(at::equal(t.b, b0));
}

TEST_CASE("gradients are clipped to the global norm and a non-finite gradient skips the step") {
  Toy t(3);
  OptimizerOptions o;
  o.max_grad_norm = 1.0;
  Optimizer opt(t.params(), o);
  t.w.mutable_grad() = at::full({4, 3}, 3.0f);  // norm = sqrt(12·9) = 10.392
  t.b.mutable_grad() = at::zeros({4});
  auto r = opt.step(1e-3);
  CHECK(r.applied);
  CHECK(r.grad_norm == doctest::Approx(std::sqrt(108.0)));

  const auto w0 = t.w.detach().clone();
  t.w.mutable_grad() = at::full({4, 3}, std::numeric_limits<float>::infinity());
  t.b.mutable_grad() = at::zeros({4});
  r = opt.step(1e-3);
  CHECK_FALSE(r.applied);
  CHECK_FALSE(std::isfinite(r.grad_norm));
  CHECK(at::equal(t.w, w0));
  CHECK(t.w.grad().abs().sum().item<float>() == 0.0f);  // zeroed for the next step

  t.w.mutable_grad() = at::full({4, 3}, 2.0f);
  t.b.mutable_grad() = at::zeros({4});
  r = opt.step(1e-3, /*grad_divisor=*/2.0);  // a loss scale of 2 undone
  CHECK(r.grad_norm == doctest::Approx(std::sqrt(12.0)));
}

TEST_CASE("parameters must be float32 master weights that require grad") {
  auto half = at::zeros({2, 2}, at::kHalf).requires_grad_(true);
  CHECK_THROWS_WITH_AS(Optimizer({{"h", half}}, {}), "optimizer: parameter h is Half, expected float32 master weights",
                       rlft::Error);
  OptimizerOptions o;
  o.beta2 = 1.0;
  CHECK_THROWS_WITH_AS(o.validate(), "beta2 = 1: must be in [0, 1)", rlft::Error);
}
