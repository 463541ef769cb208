// The MoE block: the grouped (sorted, one GEMM per expert) compute equals a per-token
// reference; padding is neither computed nor counted; gradients reach exactly the experts
// that got tokens and the router; replayed routing reproduces the recorded forward.
#include <ATen/ATen.h>

#include "policy/layers/moe.h"
#include "tests/policy/tiny_models.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too

using namespace rlft;
using namespace rlft::policy;
using rlft::test::rel_err;

namespace {

Moe make_moe(bool sigmoid, bool shared_gated, uint64_t seed = 3) {
  MoeOptions o;
  o.hidden_size = 16;
  o.expert_intermediate_size = 8;
  o.router.n_experts = 6;
  o.router.top_k = 2;
  o.router.scoring = sigmoid ? "sigmoid" : "softmax";
  o.router.norm_topk_prob = sigmoid;
  o.router.routed_scaling_factor = sigmoid ? 2.5 : 1.0;
  o.router.n_group = sigmoid ? 3 : 1;
  o.router.topk_group = sigmoid ? 2 : 1;
  o.router_bias = sigmoid;
  o.shared_intermediate_size = 12;
  o.shared_expert_gated = shared_gated;
  Moe moe(o, at::TensorOptions().dtype(at::kFloat));
  at::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : moe->parameters()) p.copy_(at::empty(p.sizes()).normal_(0.0, 0.3, gen));
  for (auto& b : moe->buffers()) b.copy_(at::empty(b.sizes()).uniform_(-0.1, 0.1, gen));
  return moe;
}

// The obvious computation: for each token, its K experts one by one.
at::Tensor per_token_reference(Moe& moe, const at::Tensor& x, const at::Tensor& indices, const at::Tensor& weights) {
  std::vector<at::Tensor> rows;
  for (int64_t t = 0; t < x.size(0); ++t) {
    auto y = at::zeros({x.size(1)});
    for (int64_t k = 0; k < indices.size(1); ++k) {
      auto& e = moe->expert_list[static_cast<size_t>(indices[t][k].item<int64_t>())];
      y = y + weights[t][k] * e->forward(x[t].unsqueeze(0))[0];
    }
    auto s = moe->shared->forward(x[t].unsqueeze(0))[0];
    if (moe->shared_expert_gate) s = at::sigmoid(moe->shared_expert_gate->forward(x[t].unsqueeze(0))[0]) * s;
    rows.push_back(y + s);
  }
  return at::stack(rows);
}

}  // namespace

TEST_CASE("grouped expert compute equals the per-token reference") {
  at::NoGradGuard no_grad;
  for (bool sigmoid : {false, true}) {
    CAPTURE(sigmoid);
    auto moe = make_moe(sigmoid, !sigmoid);
    const auto x = at::randn({37, 16}, at::make_generator<at::CPUGeneratorImpl>(11));
    const auto out = moe->forward(x, {});
    const auto r = route(moe->gate->forward(x), moe->gate->e_score_correction_bias, moe->options().router);
    CHECK(at::equal(out.indices, r.indices));
    CHECK(rel_err(out.hidden, per_token_reference(moe, x, r.indices, r.weights)) <= 1e-5);
    CHECK(out.load.sum().item<int64_t>() == 37 * 2);
  }
}

TEST_CASE("padding tokens get no experts and are not counted") {
  at::NoGradGuard no_grad;
  auto moe = make_moe(true, false);
  const auto x = at::randn({10, 16}, at::make_generator<at::CPUGeneratorImpl>(12));
  auto valid = at::ones({10}, at::kBool);
  valid.narrow(0, 0, 4).fill_(false);
  MoeInputs in;
  in.valid = valid;
  const auto out = moe->forward(x, in);
  CHECK(out.load.sum().item<int64_t>() == 6 * 2);
  const auto all = moe->forward(x, {});
  CHECK(rel_err(out.hidden.narrow(0, 4, 6), all.hidden.narrow(0, 4, 6)) <= 1e-6);
  // Padding rows hold only the shared expert's output.
  CHECK(rel_err(out.hidden.narrow(0, 0, 4), moe->shared->forward(x.narrow(0, 0, 4))) <= 1e-6);
}

TEST_CASE("gradients reach every expert that received tokens, and the router, and no other expert") {
  auto moe = make_moe(true, false);
  const auto x = at::randn({3, 16}, at::make_generator<at::CPUGeneratorImpl>(13)).requires_grad_(true);
  const auto out = moe->forward(x, {});
  out.hidden.pow(2).sum().backward();
  const auto load = out.load;
  int used = 0;
  for (int64_t e = 0; e < 6; ++e) {
    CAPTURE(e);
    const auto& g = moe->expert_list[static_cast<size_t>(e)]->gate_proj->weight.grad();
    const bool has_grad = g.defined() && g.abs().sum().item<float>() > 0.0f;
    CHECK(has_grad == (load[e].item<int64_t>() > 0));
    used += load[e].item<int64_t>() > 0;
  }
  CHECK(used < 6);  // 3 tokens × 2 experts leave some experts idle
  CHECK(moe->gate->weight.grad().abs().sum().item<float>() > 0.0f);
  CHECK(!moe->gate->e_score_correction_bias.requires_grad());
  CHECK(x.grad().abs().sum().item<float>() > 0.0f);
}

TEST_CASE("replayed routing reproduces the recorded forward exactly") {
  at::NoGradGuard no_grad;
  for (const std::string name : {"deepseek-v3", "qwen2-moe", "qwen3-moe"}) {
    CAPTURE(name);
    auto model = test::tiny_model(name);
    ForwardInputs in;
    in.tokens = test::random_tokens(2, 8, model->config().vocab_size);
    in.record_routing = true;
    const auto recorded = model->forward(in);
    REQUIRE(recorded.routing.size() == model->moe_layers().size());
    ForwardInputs again = in;
    again.replay_routing = &recorded.routing;
    const auto replayed = model->forward(again);
    CHECK(at::equal(replayed.logits, recorded.logits));
    for (size_t l = 0; l < recorded.routing.size(); ++l) CHECK(at::equal(replayed.routing[l], recorded.routing[l]));
    // Perturbed routers would choose other experts; replay keeps the recorded ones.
    for (auto& p : model->named_parameters())
      if (p.key().find("mlp.gate.weight") != std::string::npos) p.value().mul_(-1.0);
    const auto fresh = model->forward(in);
    const auto kept = model->forward(again);
    bool any_differs = false;
    for (size_t l = 0; l < recorded.routing.size(); ++l) {
      any_differs |= !at::equal(fresh.routing[l], recorded.routing[l]);
      CHECK(at::equal(kept.routing[l], recorded.routing[l]));
    }
    CHECK(any_differs);
  }
}

TEST_CASE("routing captured through the KV cache replays in one training forward") {
  at::NoGradGuard no_grad;
  auto model = test::tiny_model("deepseek-v3");
  const auto tokens = test::random_tokens(1, 6, model->config().vocab_size);
  auto cache = model->make_cache(1);
  std::vector<std::vector<at::Tensor>> steps;
  std::vector<at::Tensor> step_logits;
  for (int64_t t = 0; t < 6; ++t) {
    ForwardInputs in;
    in.tokens = tokens.narrow(1, t, 1);
    in.cache = cache.get();
    in.record_routing = true;
    auto out = model->forward(in);
    steps.push_back(out.routing);
    step_logits.push_back(out.logits);
  }
  std::vector<at::Tensor> routing;
  for (size_t l = 0; l < steps[0].size(); ++l) {
    std::vector<at::Tensor> per_step;
    for (auto& s : steps) per_step.push_back(s[l]);
    routing.push_back(at::cat(per_step, 1));  // [1, 6, K]
  }
  ForwardInputs in;
  in.tokens = tokens;
  in.replay_routing = &routing;
  in.record_routing = true;
  const auto out = model->forward(in);
  for (size_t l = 0; l < routing.size(); ++l) CHECK(at::equal(out.routing[l], routing[l]));
  CHECK(rel_err(out.logits, at::cat(step_logits, 1)) <= 1e-5);
}

TEST_CASE("the aux-loss-free update moves each MoE layer's bias by the sign rule of its load") {
  at::NoGradGuard no_grad;
  auto model = test::tiny_model("deepseek-v3");
  ForwardInputs in;
  in.tokens = test::random_tokens(4, 16, model->config().vocab_size);
  const auto out = model->forward(in);
  REQUIRE(out.router.size() == 2);  // trunk layers 1 and 2 (layer 0 is dense; MTP not run)
  CHECK(out.router[0].layer == 1);
  CHECK(out.router[1].layer == 2);
  std::vector<at::Tensor> before;
  for (const auto& s : out.router) {
    CHECK(s.load.sum().item<int64_t>() == 4 * 16 * 2);
    before.push_back(model->model->decoder_layers[s.layer]->moe->gate->e_score_correction_bias.clone());
  }
  model->update_router_bias(out.router, 0.01);
  for (size_t i = 0; i < out.router.size(); ++i) {
    const auto load = out.router[i].load.to(at::kFloat);
    const auto expected = before[i] + 0.01 * at::sign(load.mean() - load);
    const auto& after = model->model->decoder_layers[out.router[i].layer]->moe->gate->e_score_correction_bias;
    CHECK(rel_err(after, expected) <= 1e-6);
  }
  // A Qwen model has no correction bias: the update is an error naming the layer.
  auto qwen = test::tiny_model("qwen2-moe");
  CHECK_THROWS_WITH_AS(qwen->update_router_bias({{0, at::ones({8}, at::kLong)}}, 0.01),
                       doctest::Contains("layer 0 has no e_score_correction_bias"), rlft::Error);
}

TEST_CASE("has_router_bias: DeepSeek-V3 with noaux_tc balances its router bias; other methods and Qwen do not") {
  ModelOptions o;
  o.device = at::kMeta;  // shapes only
  const auto registry = builtin_architectures();
  CHECK(build_model(test::tiny_config("deepseek-v3"), o, registry)->has_router_bias());
  CHECK(!build_model(test::tiny_config("deepseek-v3", {"model.topk_method=group_limited_greedy"}), o, registry)
             ->has_router_bias());
  for (const char* name : {"qwen2-moe", "qwen3-moe", "qwen2", "llama"}) {
    CAPTURE(name);
    CHECK(!build_model(test::tiny_config(name), o, registry)->has_router_bias());
  }
}
