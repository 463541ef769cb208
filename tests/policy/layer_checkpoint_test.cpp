// Activation checkpointing per decoder layer (policy/layer_checkpoint.h): the same loss and
// the same gradients as the plain forward, for dense and MoE layers, with the balance losses
// (whose inputs leave the layer), routing replay, and under bf16 autocast; and it keeps less.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/function.h>
#include <torch/nn/module.h>

#include <map>
#include <set>

#include "tests/policy/tiny_models.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too

using namespace rlft;
using namespace rlft::policy;
using rlft::test::rel_err;

namespace {

CausalLM with_checkpointing(const ModelConfig& config, bool on, at::ScalarType dtype = at::kFloat) {
  ModelOptions o;
  o.activation_checkpointing = on;
  o.dtype = dtype;
  auto model = build_model(config, o, builtin_architectures());
  auto seeded = test::tiny_model(config, 7, dtype);
  torch::NoGradGuard no_grad;
  const auto src = seeded->named_parameters();
  for (auto& p : model->named_parameters()) p.value().copy_(src[p.key()]);
  const auto bufs = seeded->named_buffers();
  for (auto& b : model->named_buffers()) b.value().copy_(bufs[b.key()]);
  return model;
}

struct Result {
  double loss = 0;
  std::map<std::string, at::Tensor> grads;
};

Result train_step(CausalLM& model, const at::Tensor& tokens, const std::vector<at::Tensor>* replay, bool bf16) {
  model->zero_grad();
  const int64_t B = tokens.size(0), T = tokens.size(1);
  ForwardInputs in;
  in.tokens = tokens;
  auto mask = at::ones_like(tokens, at::kBool);
  mask[0][0] = false;  // a left-padded row
  in.attention_mask = mask;
  in.replay_routing = replay;
  in.mtp = !model->model->mtp_layers.empty();
  in.balance = BalanceLossOptions{0.01, 0.02};
  in.logits = LogitsScope::kNone;
  in.return_hidden = true;
  ForwardOutput out;
  at::Tensor loss;
  {
    if (bf16) {
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
    }
    out = model->forward(in);
    const auto h = out.hidden.narrow(1, 0, T - 1).reshape({B * (T - 1), -1});
    const auto lp = model->token_logprobs(h, tokens.narrow(1, 1, T - 1).reshape({-1}), 1.0, false).logp;
    loss = -lp.mean() + out.aux_loss;
    if (in.mtp) loss = loss + 0.3 * out.mtp_loss;
    if (bf16) {
      at::autocast::set_cpu_enabled(false);
      at::autocast::clear_cache();
    }
  }
  loss.backward();
  Result r;
  r.loss = loss.item<double>();
  for (const auto& p : model->named_parameters())
    if (p.value().grad().defined()) r.grads[p.key()] = p.value().grad().clone();
  return r;
}

void check_equal(const Result& got, const Result& ref, double tol) {
  CHECK(std::abs(got.loss - ref.loss) <= tol * std::max(1.0, std::abs(ref.loss)));
  REQUIRE(got.grads.size() == ref.grads.size());
  for (const auto& [key, g] : ref.grads) {
    CAPTURE(key);
    REQUIRE(got.grads.count(key) == 1);
    if (g.abs().max().item<double>() == 0) {
      CHECK(got.grads.at(key).abs().max().item<double>() == 0);
      continue;
    }
    CHECK(rel_err(got.grads.at(key), g) <= tol);
  }
}

}  // namespace

// The recomputation is the same computation; in fp32 the gradients of a layer's input add up
// in another order (the engine sums a tensor's incoming gradients as they arrive), which
// shows as rounding (<= 1e-5 relative); in fp64 they agree to 1e-10.
TEST_CASE("activation checkpointing gives the plain forward's loss and gradients") {
  for (const auto& [dtype, tol] :
       std::vector<std::pair<at::ScalarType, double>>{{at::kFloat, 1e-5}, {at::kDouble, 1e-10}})
    for (const std::string name : {"deepseek-v3", "qwen2-moe", "qwen2", "llama"}) {
      CAPTURE(dtype);
      CAPTURE(name);
      const auto config = test::tiny_config(name);
      const auto tokens = test::random_tokens(3, 11, config.vocab_size, 9);
      auto plain = with_checkpointing(config, false, dtype);
      auto ckpt = with_checkpointing(config, true, dtype);
      const auto ref = train_step(plain, tokens, nullptr, false);
      REQUIRE(ref.grads.size() > 0);
      check_equal(train_step(ckpt, tokens, nullptr, false), ref, tol);
    }
}

TEST_CASE("activation checkpointing with routing replay and under bf16 autocast") {
  const auto config = test::tiny_config("qwen3-moe");
  const auto tokens = test::random_tokens(2, 9, config.vocab_size, 3);
  auto plain = with_checkpointing(config, false);
  auto ckpt = with_checkpointing(config, true);
  std::vector<at::Tensor> routing;
  {
    torch::NoGradGuard no_grad;
    ForwardInputs in;
    in.tokens = tokens;
    in.record_routing = true;
    in.logits = LogitsScope::kNone;
    routing = plain->forward(in).routing;
  }
  REQUIRE(!routing.empty());
  check_equal(train_step(ckpt, tokens, &routing, false), train_step(plain, tokens, &routing, false), 1e-5);
  // bf16: the recomputation runs under the first forward's autocast, so it is the same computation.
  check_equal(train_step(ckpt, tokens, &routing, true), train_step(plain, tokens, &routing, true), 1e-5);
}

TEST_CASE("a checkpointed forward's autograd graph has one node per layer, not every op's") {
  // The plain graph holds a node (and its saved intermediates) for every op of every layer;
  // the checkpointed one a node per layer holding the layer's input.
  const auto config = test::tiny_config("qwen2", {"model.num_hidden_layers=4"});
  const auto tokens = test::random_tokens(2, 16, config.vocab_size, 4);
  auto graph_nodes = [&](bool on) {
    auto model = with_checkpointing(config, on);
    ForwardInputs in;
    in.tokens = tokens;
    in.logits = LogitsScope::kNone;
    in.return_hidden = true;
    const auto h = model->forward(in).hidden;
    std::set<const torch::autograd::Node*> seen;
    std::vector<std::shared_ptr<torch::autograd::Node>> stack{h.grad_fn()};
    int64_t nodes = 0;
    while (!stack.empty()) {
      auto n = stack.back();
      stack.pop_back();
      if (!n || !seen.insert(n.get()).second) continue;
      ++nodes;
      for (const auto& e : n->next_edges()) stack.push_back(e.function);
    }
    return nodes;
  };
  CHECK(graph_nodes(true) * 3 < graph_nodes(false));
}
