// The fused inference paths of a decode step (RMSNorm, RoPE, q/k/v and gate/up in one kernel
// pass, the MoE block's few-token dispatch) against the ATen ops that training runs: the
// same values to float rounding and, for the MoE block, the same experts and loads.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "policy/kernels/small_gemm.h"
#include "policy/layers/attention.h"
#include "policy/layers/rms_norm.h"
#include "policy/layers/rope.h"
#include "tests/policy/tiny_models.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too

using namespace rlft;
using namespace rlft::policy;
using rlft::test::rel_err;
using rlft::test::seeded_randn;

TEST_CASE("fused RMSNorm in inference equals the training ops") {
  RmsNorm norm(48, 1e-6, at::TensorOptions().dtype(at::kFloat));
  {
    at::NoGradGuard no_grad;
    norm->weight.copy_(seeded_randn({48}, 1));
  }
  const auto x = seeded_randn({3, 5, 48}, 2);
  const auto trained = norm(x);  // grad mode on, the weight wants a gradient: ATen's ops
  REQUIRE(trained.requires_grad());
  at::NoGradGuard no_grad;
  const auto fused = norm(x);
  CHECK_FALSE(fused.requires_grad());
  CHECK(rel_err(fused, trained.detach()) < 1e-6);
}

TEST_CASE("RoPE rotated in one pass equals apply_rope, halves and interleaved, with a YaRN scale") {
  for (const bool interleaved : {false, true})
    for (const char* type : {"default", "yarn"}) {
      CAPTURE(interleaved);
      CAPTURE(type);
      RopeOptions o;
      o.dim = 16;
      o.theta = 10000.0;
      o.interleaved = interleaved;
      o.max_position_embeddings = 64;
      o.scaling.type = type;
      if (std::string(type) == "yarn") {
        o.scaling.factor = 4.0;
        o.scaling.original_max_position_embeddings = 64;
        o.scaling.mscale = 1.0;
      }
      const RotaryEmbedding rope(o);
      const auto x = seeded_randn({2, 3, 4, 16}, 3);                          // [B, T, H, d]
      const auto positions = at::tensor({0, 1, 2, -1, 5, 200}).view({2, 3});  // a padded slot, a far one
      const auto [cos, sin] = rope.cos_sin(positions, at::kFloat);
      const auto expected = apply_rope(x.transpose(1, 2), cos, sin, interleaved);  // [B, H, T, d]
      at::NoGradGuard no_grad;
      const auto fused = rope.rotate_inference(x, positions);
      REQUIRE(fused.defined());
      CHECK(fused.sizes() == expected.sizes());
      CHECK(fused.is_contiguous());
      CHECK(rel_err(fused, expected) < 1e-6);
    }
}

TEST_CASE("linear_many equals one linear per weight, with and without biases") {
  const auto x = seeded_randn({5, 32}, 4);
  const std::vector<at::Tensor> ws{seeded_randn({24, 32}, 5), seeded_randn({8, 32}, 6), seeded_randn({8, 32}, 7)};
  const std::vector<at::Tensor> bs{seeded_randn({24}, 8), at::Tensor(), seeded_randn({8}, 9)};
  at::NoGradGuard no_grad;
  const auto out = linear_many(x.view({1, 5, 32}), ws, bs);
  REQUIRE(out.size() == 3);
  for (size_t i = 0; i < ws.size(); ++i) {
    CHECK(out[i].sizes() == at::IntArrayRef({1, 5, ws[i].size(0)}));
    CHECK(rel_err(out[i].view({5, -1}), at::linear(x, ws[i], bs[i])) < 1e-6);
  }
  CHECK_THROWS_AS(linear_many(x, ws, {bs[0]}), rlft::Error);
}

TEST_CASE("a decode-sized forward in inference equals the training forward, for every architecture") {
  // A few tokens per row, a left-padded row: under no-grad the fused paths run (the MoE block
  // at <= 64 tokens takes its few-token dispatch); with gradients wanted, ATen's ops do.
  for (const auto& name : test::tiny_names()) {
    CAPTURE(name);
    auto model = test::tiny_model(name);
    const auto tokens = at::tensor({5, 9, 2, 7, 3, 11, 4, 8}).view({2, 4});
    auto mask = at::ones({2, 4}, at::kLong);
    mask[1][0] = 0;
    ForwardInputs in;
    in.tokens = tokens;
    in.attention_mask = mask;
    in.logits = LogitsScope::kAll;
    in.record_routing = true;
    const auto trained = model->forward(in);
    REQUIRE(trained.logits.requires_grad());
    at::NoGradGuard no_grad;
    const auto fused = model->forward(in);
    const auto keep = mask.to(at::kBool).unsqueeze(-1).expand_as(fused.logits);
    CHECK(rel_err(fused.logits.masked_select(keep), trained.logits.detach().masked_select(keep)) < 1e-5);
    REQUIRE(fused.routing.size() == trained.routing.size());
    for (size_t m = 0; m < fused.routing.size(); ++m) {
      const auto real = mask.to(at::kBool).unsqueeze(-1).expand_as(fused.routing[m]);
      CHECK(at::equal(fused.routing[m].masked_select(real), trained.routing[m].masked_select(real)));
    }
    REQUIRE(fused.router.size() == trained.router.size());
    for (size_t m = 0; m < fused.router.size(); ++m) CHECK(at::equal(fused.router[m].load, trained.router[m].load));
  }
}

TEST_CASE("attention by positions with the fused masked softmax equals attend() with attention_mask") {
  // Grouped heads (H = 4 over H_kv = 2), a padded query, an evicted (-1) key slot, a sliding
  // window with sink tokens and without.
  const auto q = seeded_randn({2, 4, 3, 8}, 11);  // [B, H, T, d]
  const auto k = seeded_randn({2, 2, 6, 8}, 12);  // [B, H_kv, S, d]
  const auto v = seeded_randn({2, 2, 6, 8}, 13);
  const auto query_positions = at::tensor({6, 7, 8, -1, 4, 5}).view({2, 3});
  const auto key_positions = at::tensor({0, 1, 5, 6, 7, 8, -1, 0, 1, 2, 3, 4}).view({2, 6});
  for (const auto& [window, sinks] : std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {3, 1}}) {
    CAPTURE(window);
    const auto mask = attention_mask(query_positions, key_positions, window, sinks);
    const auto expected = attend(q, k, v, mask, 0.35);
    at::NoGradGuard no_grad;
    const auto fused = attend_by_positions(q, k, v, query_positions, key_positions, window, sinks, 0.35);
    REQUIRE(fused.defined());
    // Padding queries (position -1) are garbage in both; compare the real ones.
    const auto real = (query_positions >= 0).unsqueeze(-1).expand_as(fused);
    CHECK(rel_err(fused.masked_select(real), expected.masked_select(real)) < 1e-6);
  }
}
