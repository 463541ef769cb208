#include "rl/optimizer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <doctest/doctest.h>

#include <torch/serialize/archive.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "policy/checkpoint/safetensors.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_util.h"

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
  rlft::test::TempDir dir;
  OptimizerOptions o;
  o.weight_decay = 0.1;
  Toy a(1), b(1);
  Optimizer oa(a.params(), o);
  for (int s = 0; s < 3; ++s) a.backward(s), oa.step(1e-2);

  Optimizer ob(b.params(), o);
  b.backward(0);
  ob.step(1e-2);
  const std::string path = dir.file("optimizer.safetensors");
  ob.save_state(path);
  // The file names each parameter's state: what another tool reads without rlft.
  const auto file = rlft::checkpoint::SafetensorsFile::open(path);
  CHECK(file.names() ==
        std::vector<std::string>{"b.exp_avg", "b.exp_avg_sq", "b.step", "w.exp_avg", "w.exp_avg_sq", "w.step"});
  CHECK(file.tensor("w.step").item<int64_t>() == 1);

  Optimizer resumed(b.params(), o);
  resumed.load_state(path);
  for (int s = 1; s < 3; ++s) b.backward(s), resumed.step(1e-2);
  CHECK(at::equal(a.w, b.w));
  CHECK(at::equal(a.b, b.b));
  CHECK_THROWS_AS(resumed.load_archive_state("not an archive"), rlft::Error);
}

TEST_CASE("an optimizer.bin archive from earlier checkpoints still loads") {
  // Earlier checkpoints held LibTorch's archive of the same two AdamW groups (decayed matrices,
  // then the rest): written here by LibTorch itself, loaded, and the run continues bitwise.
  OptimizerOptions o;
  o.weight_decay = 0.1;
  o.max_grad_norm = 0;
  Toy a(6), b(6);
  Optimizer oa(a.params(), o);
  auto group = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(1e-2).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<at::Tensor>{b.w}, group(o.weight_decay));
  groups.emplace_back(std::vector<at::Tensor>{b.b}, group(0.0));
  torch::optim::AdamW old(groups, torch::optim::AdamWOptions(1e-2));
  a.backward(0), oa.step(1e-2);
  b.backward(0), old.step();
  b.w.mutable_grad().zero_(), b.b.mutable_grad().zero_();  // rlft's step zeroes them; AdamW's does not
  torch::serialize::OutputArchive archive;
  old.save(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  Optimizer resumed(b.params(), o);
  resumed.load_archive_state(bytes.str());
  for (int s = 1; s < 3; ++s) a.backward(s), oa.step(1e-2), b.backward(s), resumed.step(1e-2);
  CHECK(at::equal(a.w, b.w));
  CHECK(at::equal(a.b, b.b));
}

TEST_CASE("an optimizer state replicated through its manifest and tensors continues bitwise") {
  // What resume does across ranks: main loads, the others build zero state from the manifest
  // and receive the moments in place (here a copy_ stands for the broadcast).
  OptimizerOptions o;
  Toy a(4), b(4);
  Optimizer oa(a.params(), o), ob(b.params(), o);
  for (int s = 0; s < 2; ++s) a.backward(s), oa.step(1e-2);
  b.w.detach().copy_(a.w.detach());
  b.b.detach().copy_(a.b.detach());
  ob.create_state(oa.state_manifest());
  auto from = oa.state_tensors(), to = ob.state_tensors();
  REQUIRE(to.size() == 4);
  for (size_t i = 0; i < to.size(); ++i) to[i].copy_(from[i]);
  for (int s = 2; s < 4; ++s) a.backward(s), oa.step(1e-2), b.backward(s), ob.step(1e-2);
  CHECK(at::equal(a.w, b.w));
  CHECK(at::equal(a.b, b.b));
}

TEST_CASE("an optimizer state that does not fit the model is refused, naming the tensor") {
  rlft::test::TempDir dir;
  Toy t(5);
  Optimizer opt(t.params(), OptimizerOptions{});
  const auto write = [&](const std::string& name, const rlft::checkpoint::TensorMap& tensors) {
    const std::string path = dir.file(name);
    rlft::checkpoint::write_safetensors(path, tensors, {});
    return path;
  };
  const auto one = at::ones({1}, at::kLong);
  const auto wrong_shape = write(
      "shape.safetensors", {{"w.exp_avg", at::zeros({3, 4})}, {"w.exp_avg_sq", at::zeros({4, 3})}, {"w.step", one}});
  CHECK(rlft::test::contains(rlft::test::error_of([&] { opt.load_state(wrong_shape); }),
                             "`w.exp_avg` has shape [3, 4] but the parameter has [4, 3]"));
  const auto unknown = write("unknown.safetensors", {{"v.exp_avg", at::zeros({4})}});
  CHECK(rlft::test::contains(rlft::test::error_of([&] { opt.load_state(unknown); }),
                             "which is not a trainable parameter of this model"));
  const auto partial = write("partial.safetensors", {{"b.exp_avg", at::zeros({4})}, {"b.step", one}});
  CHECK(rlft::test::contains(rlft::test::error_of([&] { opt.load_state(partial); }), "`b.exp_avg_sq` is missing"));
  CHECK_THROWS_AS(opt.load_state(dir.file("absent.safetensors")), rlft::Error);
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
  CHECK(!t.w.grad().defined());  // cleared for the next step

  // A parameter with no gradient in a step (an expert no token chose) stays where it is,
  // momentum or not: the step after a resume and the uninterrupted one agree.
  t.w.mutable_grad() = at::full({4, 3}, 0.5f);
  t.b.mutable_grad() = at::full({4}, 0.5f);
  CHECK(opt.step(1e-3).applied);
  const auto w1 = t.w.detach().clone();
  t.b.mutable_grad() = at::full({4}, 0.5f);
  CHECK(opt.step(1e-3).applied);
  CHECK(at::equal(t.w, w1));

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
