// The LM head fused with log-softmax, chunk by chunk (policy/head_logprobs.h): values and
// gradients equal the unchunked computation (head, log_softmax, gather) within 1e-6 in fp32,
// for any chunk size, with temperature and entropy; through whole models (dense, MoE, MTP,
// tied and untied embeddings).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/module.h>

#include <map>
#include <tuple>

#include "policy/head_logprobs.h"
#include "tests/policy/tiny_models.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too

using namespace rlft;
using namespace rlft::policy;
using rlft::test::rel_err;
using rlft::test::seeded_randn;

namespace {

struct Grads {
  at::Tensor logp, entropy, hidden, weight;
};

// logp, entropy and the gradients of Σ a·logp + Σ b·entropy, unchunked (reference) or fused.
Grads run(const at::Tensor& h0, const at::Tensor& w0, const at::Tensor& targets, double temperature, int64_t chunk,
          bool reference) {
  const auto h = h0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
  at::Tensor logp, entropy;
  if (reference) {
    const auto lp = at::log_softmax(h.matmul(w.t()) / temperature, -1);  // [N, V]
    logp = lp.gather(1, targets.unsqueeze(1)).squeeze(1);
    entropy = -(lp.exp() * lp).sum(-1);
  } else {
    HeadLogprobOptions o;
    o.temperature = temperature;
    o.entropy = true;
    o.chunk_tokens = chunk;
    const auto r = head_logprobs(h, w, targets, o);
    logp = r.logp;
    entropy = r.entropy;
  }
  const auto a = seeded_randn({h0.size(0)}, 11), b = seeded_randn({h0.size(0)}, 12);
  ((logp * a).sum() + (entropy * b).sum()).backward();
  return {logp.detach(), entropy.detach(), h.grad(), w.grad()};
}

}  // namespace

TEST_CASE("chunked head log-probs and entropies equal the unchunked ones, values and gradients") {
  const int64_t N = 13, D = 8, V = 50;
  const auto h = seeded_randn({N, D}, 1), w = seeded_randn({V, D}, 2) * 0.5;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto targets = at::randint(0, V, {N}, gen, at::TensorOptions().dtype(at::kLong));
  for (double temperature : {1.0, 0.7}) {
    const auto ref = run(h, w, targets, temperature, 0, true);
    for (int64_t chunk : {1, 4, 13, 100}) {
      CAPTURE(temperature);
      CAPTURE(chunk);
      const auto got = run(h, w, targets, temperature, chunk, false);
      CHECK((got.logp - ref.logp).abs().max().item<double>() <= 1e-6);
      CHECK((got.entropy - ref.entropy).abs().max().item<double>() <= 1e-6);
      CHECK(rel_err(got.hidden, ref.hidden) <= 1e-6);
      CHECK(rel_err(got.weight, ref.weight) <= 1e-6);
    }
  }
}

TEST_CASE("only the asked-for gradients flow: a frozen weight gets none, the hidden states still do") {
  const auto h = seeded_randn({5, 4}, 4).requires_grad_(true), w = seeded_randn({9, 4}, 5);
  HeadLogprobOptions o;
  o.chunk_tokens = 2;
  head_logprobs(h, w, at::arange(5, at::kLong), o).logp.sum().backward();
  CHECK(h.grad().defined());
  CHECK(h.grad().abs().sum().item<double>() > 0);
  CHECK_FALSE(w.grad().defined());
}

TEST_CASE("a chunk size below 1 and mismatched shapes are errors") {
  const auto h = seeded_randn({3, 4}, 6), w = seeded_randn({7, 4}, 7);
  HeadLogprobOptions o;
  o.chunk_tokens = 0;
  CHECK_THROWS_WITH(head_logprobs(h, w, at::zeros({3}, at::kLong), o), doctest::Contains("chunk_tokens = 0"));
  o.chunk_tokens = 2;
  CHECK_THROWS_WITH(head_logprobs(h, seeded_randn({7, 5}, 8), at::zeros({3}, at::kLong), o),
                    doctest::Contains("weight [V, D]"));
  CHECK(chunk_tokens_for(64, 151936) == 110);
  CHECK(chunk_tokens_for(1e-9, 151936) == 1);
}

namespace {

// A model whose token_logprobs work in chunks of `chunk` tokens.
CausalLM chunked_model(const ModelConfig& config, int64_t chunk, at::ScalarType dtype) {
  ModelOptions o;
  o.dtype = dtype;
  o.logits_chunk_mib = (static_cast<double>(chunk) + 0.5) * 4.0 * static_cast<double>(config.vocab_size) / 1048576.0;
  auto model = build_model(config, o, builtin_architectures());
  auto seeded = test::tiny_model(config, 7, dtype);  // the same weights and router biases as the other tests use
  torch::NoGradGuard no_grad;
  const auto src = seeded->named_parameters();
  for (auto& p : model->named_parameters()) p.value().copy_(src[p.key()]);
  const auto bufs = seeded->named_buffers();
  for (auto& b : model->named_buffers()) b.value().copy_(bufs[b.key()]);
  REQUIRE(model->logits_chunk_tokens() == chunk);
  return model;
}

struct ModelRun {
  at::Tensor logp, entropy, mtp_loss;
  std::map<std::string, at::Tensor> grads;
};

// log-probs of the next tokens at temperature 0.8, entropies and (with MTP) the MTP loss;
// then the gradients of a fixed combination of all three.
ModelRun model_run(CausalLM& model, const at::Tensor& tokens, bool fused) {
  model->zero_grad();
  const int64_t B = tokens.size(0), T = tokens.size(1);
  const bool mtp = !model->model->mtp_layers.empty();
  ForwardInputs in;
  in.tokens = tokens;
  in.mtp = mtp;
  in.logits = fused ? LogitsScope::kNone : LogitsScope::kAll;
  in.return_hidden = true;
  const auto out = model->forward(in);
  const auto next = tokens.narrow(1, 1, T - 1).reshape({-1});
  ModelRun r;
  if (fused) {
    const auto h = out.hidden.narrow(1, 0, T - 1).reshape({B * (T - 1), -1});
    const auto lp = model->token_logprobs(h, next, 0.8, true);
    r.logp = lp.logp;
    r.entropy = lp.entropy;
    if (mtp) {
      REQUIRE(out.mtp_logits.empty());  // kNone: the MTP loss never built [B, T, V]
      r.mtp_loss = out.mtp_loss;
    }
  } else {
    const auto logits = out.logits.narrow(1, 0, T - 1).reshape({B * (T - 1), -1});
    const auto lp = at::log_softmax(logits.to(model->options().dtype) / 0.8, -1);
    r.logp = lp.gather(1, next.unsqueeze(1)).squeeze(1);
    r.entropy = -(lp.exp() * lp).sum(-1);
    if (mtp) {
      REQUIRE(out.mtp_logits.size() == 1);
      r.mtp_loss = shifted_cross_entropy(out.mtp_logits[0], tokens, at::ones_like(tokens, at::kBool), 2);
    }
  }
  const auto dt = r.logp.scalar_type();
  auto loss = (r.logp * seeded_randn({r.logp.size(0)}, 21).to(dt)).sum() +
              (r.entropy * seeded_randn({r.logp.size(0)}, 22).to(dt)).sum();
  if (mtp) loss = loss + 3.0 * r.mtp_loss;
  loss.backward();
  for (const auto& p : model->named_parameters())
    if (p.value().grad().defined()) r.grads[p.key()] = p.value().grad().clone();
  return r;
}

}  // namespace

// fp32: values within 1e-6 (relative to their largest); parameter gradients within 1e-5, the
// rounding of a different summation order (per-chunk partial sums of the head's weight
// gradient) carried through the layers. fp64 shows the two are the same computation.
TEST_CASE("through whole models the fused head equals the full logits: dense, MoE, MTP, tied and untied") {
  for (const auto& [dtype, value_tol, grad_tol] :
       std::vector<std::tuple<at::ScalarType, double, double>>{{at::kFloat, 1e-6, 1e-5}, {at::kDouble, 1e-12, 1e-10}})
    for (const auto& [name, overrides] : std::vector<std::pair<std::string, std::vector<std::string>>>{
             {"deepseek-v3", {}},                                  // MoE, MLA, MTP, untied
             {"deepseek-v3", {"model.tie_word_embeddings=true"}},  // the same, tied
             {"qwen2-moe", {}},                                    // MoE, untied
             {"qwen2", {}},                                        // dense, tied
             {"llama", {}}}) {                                     // dense, untied
      CAPTURE(dtype);
      CAPTURE(name);
      CAPTURE(overrides.size());
      const auto config = test::tiny_config(name, overrides);
      const auto tokens = test::random_tokens(3, 10, config.vocab_size, 5);
      auto whole = chunked_model(config, 1000, dtype);
      auto chunked = chunked_model(config, 4, dtype);
      const auto ref = model_run(whole, tokens, false);
      const auto got = model_run(chunked, tokens, true);
      CHECK(rel_err(got.logp, ref.logp) <= value_tol);
      CHECK(rel_err(got.entropy, ref.entropy) <= value_tol);
      if (ref.mtp_loss.defined()) CHECK(rel_err(got.mtp_loss, ref.mtp_loss) <= value_tol);
      REQUIRE(got.grads.size() == ref.grads.size());
      for (const auto& [key, g] : ref.grads) {
        CAPTURE(key);
        REQUIRE(got.grads.count(key) == 1);
        if (g.abs().max().item<double>() == 0) continue;  // e.g. experts no token chose
        CHECK(rel_err(got.grads.at(key), g) <= grad_tol);
      }
    }
}
