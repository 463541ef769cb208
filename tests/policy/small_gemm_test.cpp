// The few-rows GEMM kernel (policy/kernels/small_gemm.h) against ATen's BLAS path, on every
// instruction set this CPU runs, and the three places that use it in inference — Linear,
// the MoE experts, decode attention — against the same computation with gradients on
// (which keeps ATen's ops).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <limits>

#include "policy/kernels/small_gemm.h"
#include "policy/layers/attention.h"
#include "policy/layers/linear.h"
#include "policy/layers/moe.h"
#include "tests/policy/tiny_models.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too

using namespace rlft;
using namespace rlft::policy;
using rlft::test::rel_err;
using rlft::test::seeded_randn;

namespace {

// y = x · wᵀ through the kernel of one instruction set.
at::Tensor kernel_linear(const at::Tensor& x, const at::Tensor& w, const std::string& isa) {
  auto y = at::full({x.size(0), w.size(0)}, std::numeric_limits<float>::quiet_NaN());
  run_small_gemm({SmallGemmJob{x.data_ptr<float>(), x.stride(0), x.size(0), w.data_ptr<float>(), w.size(1), w.size(0),
                               y.data_ptr<float>(), y.stride(0)}},
                 isa);
  return y;
}

}  // namespace

TEST_CASE("the few-rows kernel equals BLAS on every instruction set, shape and tail") {
  const auto isas = small_gemm_isas();
  REQUIRE(!isas.empty());
  CHECK(isas.back() == "base");
  CHECK(std::string(small_gemm_isa()) == isas.front());
  uint64_t seed = 1;
  for (const auto& isa : isas)
    for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 13, 16, 17, 33})
      for (int64_t k : {1, 5, 16, 37, 512})
        for (int64_t n : {1, 3, 4, 9, 64, 301}) {
          CAPTURE(isa);
          CAPTURE(m);
          CAPTURE(k);
          CAPTURE(n);
          const auto x = seeded_randn({m, k}, ++seed), w = seeded_randn({n, k}, ++seed);
          CHECK(rel_err(kernel_linear(x, w, isa), at::linear(x, w)) <= 2e-6);
        }
}

TEST_CASE("the kernel reads strided rows and writes into a wider output") {
  for (const auto& isa : small_gemm_isas()) {
    CAPTURE(isa);
    const auto big = seeded_randn({6, 40}, 3), w = seeded_randn({10, 24}, 4);
    const auto x = big.narrow(1, 8, 24);  // rows 40 apart
    auto y = at::zeros({6, 16});
    run_small_gemm({SmallGemmJob{x.data_ptr<float>(), 40, 6, w.data_ptr<float>(), 24, 10, y.data_ptr<float>(), 16}},
                   isa);
    CHECK(rel_err(y.narrow(1, 0, 10), at::linear(x, w)) <= 2e-6);
    CHECK(y.narrow(1, 10, 6).abs().max().item<float>() == 0.0f);  // nothing written past n
  }
}

TEST_CASE("the x · w form (attention's values) equals matmul, with strided weight rows") {
  uint64_t seed = 100;
  for (const auto& isa : small_gemm_isas())
    for (int64_t m : {1, 3, 4, 6, 16})
      for (int64_t k : {1, 7, 64})
        for (int64_t n : {1, 5, 16, 64, 70, 128}) {
          CAPTURE(isa);
          CAPTURE(m);
          CAPTURE(k);
          CAPTURE(n);
          const auto x = seeded_randn({m, k}, ++seed);
          const auto w = seeded_randn({k, n + 3}, ++seed).narrow(1, 0, n);  // rows n + 3 apart
          auto y = at::empty({m, n});
          SmallGemmJob job{x.data_ptr<float>(), k, m, w.data_ptr<float>(), k, n, y.data_ptr<float>(), n};
          job.w_is_kn = true;
          job.ldw = n + 3;
          run_small_gemm({job}, isa);
          CHECK(rel_err(y, at::matmul(x, w)) <= 2e-6);
        }
}

TEST_CASE("many jobs of one call each land in their own output") {
  std::vector<at::Tensor> xs, ws, ys;
  std::vector<SmallGemmJob> jobs;
  for (int64_t j = 0; j < 40; ++j) {
    xs.push_back(seeded_randn({1 + j % 5, 64}, 200 + static_cast<uint64_t>(j)));
    ws.push_back(seeded_randn({70 + j, 64}, 300 + static_cast<uint64_t>(j)));
    ys.push_back(at::empty({xs.back().size(0), ws.back().size(0)}));
    jobs.push_back({xs.back().data_ptr<float>(), 64, xs.back().size(0), ws.back().data_ptr<float>(), 64,
                    ws.back().size(0), ys.back().data_ptr<float>(), ws.back().size(0)});
  }
  run_small_gemm(jobs);
  for (size_t j = 0; j < jobs.size(); ++j) CHECK(rel_err(ys[j], at::linear(xs[j], ws[j])) <= 2e-6);
}

TEST_CASE("an instruction set the CPU lacks is an error naming the ones it runs") {
  const auto x = seeded_randn({2, 8}, 1), w = seeded_randn({4, 8}, 2);
  try {
    kernel_linear(x, w, "sse9");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("'sse9'") != std::string::npos);
    CHECK(std::string(e.what()).find("base") != std::string::npos);
  }
}

TEST_CASE("linear takes the kernel only for few rows, fp32 and no gradient") {
  auto w = seeded_randn({24, 40}, 5).requires_grad_(true);
  const auto b = seeded_randn({24}, 6);
  const auto x = seeded_randn({3, 2, 40}, 7);  // 6 rows
  {
    at::NoGradGuard no_grad;
    CHECK(small_gemm_takes(x, w, b));
    const auto y = linear(x, w, b);
    CHECK(y.sizes() == at::IntArrayRef({3, 2, 24}));
    CHECK(rel_err(y, at::linear(x, w, b)) <= 2e-6);
    CHECK(!small_gemm_takes(x.to(at::kDouble), w.to(at::kDouble)));
    CHECK(!small_gemm_takes(x.transpose(1, 2).contiguous().transpose(1, 2), w));  // unit last stride needed
  }
  // With gradients wanted, ATen's op (and its autograd) runs.
  CHECK(!small_gemm_takes(x, w));
  const auto y = linear(x, w, b);
  CHECK(y.requires_grad());
  y.sum().backward();
  CHECK(rel_err(w.grad(), at::ones({24, 1}) * x.reshape({6, 40}).sum(0).unsqueeze(0)) <= 1e-6);
}

TEST_CASE("MoE experts on few rows equal the BLAS path, including an expert past the row limit") {
  MoeOptions o;
  o.hidden_size = 48;
  o.expert_intermediate_size = 40;
  o.router.n_experts = 5;
  o.router.top_k = 2;
  o.shared_intermediate_size = 24;
  Moe moe(o, at::TensorOptions().dtype(at::kFloat));
  {
    at::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
    for (auto& p : moe->parameters()) p.copy_(at::empty(p.sizes()).normal_(0.0, 0.3, gen));
  }
  for (int64_t n_tokens : {1, 6, 30}) {
    CAPTURE(n_tokens);
    const auto x = seeded_randn({n_tokens, 48}, 10 + static_cast<uint64_t>(n_tokens));
    // Expert 0 gets every token (30 rows: BLAS), the others share the second slot.
    auto replay = at::stack({at::zeros({n_tokens}, at::kLong), at::arange(n_tokens, at::kLong) % 4 + 1}, 1);
    MoeInputs in;
    in.replay = replay;
    const auto with_grad = moe->forward(x, in).hidden;  // weights require grad: ATen's ops
    at::NoGradGuard no_grad;
    const auto fast = moe->forward(x, in).hidden;
    CHECK(rel_err(fast, with_grad.detach()) <= 2e-6);
  }
}

TEST_CASE("decode attention through the kernel equals the matmul path, grouped and masked") {
  const int64_t B = 3, H = 6, H_kv = 2, d = 16, S = 11, capacity = 20;
  for (int64_t T : {1, 2}) {
    CAPTURE(T);
    const auto q = seeded_randn({B, H, T, d}, 20);
    // k, v as the KV cache holds them: views of a longer buffer, rows d apart.
    const auto k = seeded_randn({B, H_kv, capacity, d}, 21).narrow(2, 0, S);
    const auto v = seeded_randn({B, H_kv, capacity, d}, 22).narrow(2, 0, S);
    auto mask = at::ones({B, 1, T, S}, at::kBool);
    mask[0].narrow(-1, 0, 4).fill_(false);  // left padding of row 0
    mask[2][0][T - 1][S - 1] = false;
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    // The reference: plain matmuls and softmax, head by head.
    const auto qg = q.reshape({B, H_kv, H / H_kv * T, d});
    auto scores = at::matmul(qg, k.transpose(-1, -2)).mul(scale).view({B, H_kv, H / H_kv, T, S});
    scores = scores.masked_fill(mask.unsqueeze(1).logical_not(), -std::numeric_limits<float>::max());
    const auto ref = at::matmul(at::softmax(scores, -1).view({B, H_kv, H / H_kv * T, S}), v)
                         .view({B, H, T, d})
                         .transpose(1, 2)
                         .reshape({B, T, H * d});
    at::NoGradGuard no_grad;
    CHECK(rel_err(attend(q, k, v, mask, scale), ref) <= 2e-6);
  }
}
