// Training-side outputs of the policy: gradients reach every expert that received tokens,
// every router and the MTP module; the balance losses and the MTP loss are what their
// definitions say.
#include <ATen/ATen.h>

#include "tests/policy/tiny_models.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too

using namespace rlft;
using namespace rlft::policy;
using rlft::test::rel_err;

namespace {

bool has_grad(const at::Tensor& p) {
  return p.grad().defined() && p.grad().abs().sum().item<double>() > 0.0;
}

}  // namespace

TEST_CASE("gradients reach every used expert, every router and the MTP module") {
  auto model = test::tiny_model("deepseek-v3");
  const auto& c = model->config();
  ForwardInputs in;
  in.tokens = test::random_tokens(2, 12, c.vocab_size);
  in.mtp = true;
  in.balance = BalanceLossOptions{0.0, 1e-2};
  const auto out = model->forward(in);
  REQUIRE(out.mtp_logits.size() == 1);
  REQUIRE(out.mtp_loss.defined());
  REQUIRE(out.aux_loss.defined());
  const auto lm = shifted_cross_entropy(out.logits, in.tokens, at::ones_like(in.tokens, at::kBool), 1);
  (lm + 0.3 * out.mtp_loss + out.aux_loss).backward();

  // Trunk MoE layers 1, 2 and the MTP layer (3).
  REQUIRE(out.router.size() == 3);
  for (const auto& s : out.router) {
    CAPTURE(s.layer);
    DecoderLayerImpl* layer = s.layer < c.num_hidden_layers
                                  ? model->model->decoder_layers[s.layer].get()
                                  : model->model->mtp_layers[s.layer - c.num_hidden_layers].get();
    CHECK(has_grad(layer->moe->gate->weight));
    CHECK(has_grad(layer->moe->shared->down_proj->weight));
    for (int64_t e = 0; e < c.moe.n_routed_experts; ++e) {
      CAPTURE(e);
      const auto& ex = layer->moe->expert_list[e];
      const bool got_tokens = s.load[e].item<int64_t>() > 0;
      CHECK(has_grad(ex->gate_proj->weight) == got_tokens);
      CHECK(has_grad(ex->up_proj->weight) == got_tokens);
      CHECK(has_grad(ex->down_proj->weight) == got_tokens);
    }
  }
  auto& mtp = model->model->mtp_layers.at(0);
  for (const auto& p : mtp->named_parameters()) {
    CAPTURE(p.key());
    if (p.key().rfind("mlp.experts.", 0) == 0) continue;  // checked above against the load
    CHECK(has_grad(p.value()));
  }
  CHECK(has_grad(model->model->embed_tokens->weight));
  CHECK(has_grad(model->lm_head->weight));
  CHECK(has_grad(model->model->decoder_layers[0]->mla->kv_b_proj->weight));
}

TEST_CASE("the MTP loss is the cross-entropy of module k predicting the token k+1 ahead") {
  at::NoGradGuard no_grad;
  auto model = test::tiny_model("deepseek-v3");
  ForwardInputs in;
  in.tokens = test::random_tokens(2, 9, model->config().vocab_size);
  in.mtp = true;
  const auto out = model->forward(in);
  const auto& logits = out.mtp_logits[0];  // [2, 9, V]: position i predicts t_{i+2}
  double sum = 0.0;
  int n = 0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i + 2 < 9; ++i, ++n)
      sum -= at::log_softmax(logits[b][i], -1)[in.tokens[b][i + 2].item<int64_t>()].item<double>();
  CHECK(out.mtp_loss.item<double>() == doctest::Approx(sum / n).epsilon(1e-5));
  // MTP does not change the trunk's logits.
  ForwardInputs plain = in;
  plain.mtp = false;
  CHECK(at::equal(model->forward(plain).logits, out.logits));
}

TEST_CASE("the Switch aux loss of a Qwen model is E * sum of the layer-averaged f and P") {
  at::NoGradGuard no_grad;
  auto model = test::tiny_model("qwen2-moe");
  const auto& c = model->config();
  ForwardInputs in;
  in.tokens = test::random_tokens(2, 10, c.vocab_size);
  auto mask = at::ones({2, 10}, at::kBool);
  mask[1].narrow(0, 0, 3).fill_(false);
  in.attention_mask = mask;
  in.balance = BalanceLossOptions{c.moe.router_aux_loss_coef, 0.0};
  in.record_routing = true;
  const auto out = model->forward(in);
  REQUIRE(out.switch_loss.defined());
  // Recompute from the recorded routing: f from the chosen experts, P from the router
  // probabilities, both over real tokens only, averaged over layers.
  CHECK(out.switch_loss.item<double>() > 0.0);
  CHECK(out.switch_loss.item<double>() < static_cast<double>(c.moe.n_routed_experts));
  CHECK(out.aux_loss.item<double>() == doctest::Approx(c.moe.router_aux_loss_coef * out.switch_loss.item<double>()));
}

TEST_CASE("packed rows (positions restarting) equal the sequences run separately") {
  at::NoGradGuard no_grad;
  for (const std::string name : {"qwen3-moe", "deepseek-v3"}) {
    CAPTURE(name);
    auto model = test::tiny_model(name);
    const auto a = test::random_tokens(1, 5, model->config().vocab_size, 21);
    const auto b = test::random_tokens(1, 4, model->config().vocab_size, 22);
    ForwardInputs in;
    in.tokens = at::cat({a, b}, 1);
    in.positions = at::cat({at::arange(5, at::kLong), at::arange(4, at::kLong)}).unsqueeze(0);
    const auto packed = model->forward(in).logits[0];
    ForwardInputs ia, ib;
    ia.tokens = a;
    ib.tokens = b;
    CHECK(rel_err(packed.narrow(0, 0, 5), model->forward(ia).logits[0]) <= 1e-5);
    CHECK(rel_err(packed.narrow(0, 5, 4), model->forward(ib).logits[0]) <= 1e-5);
  }
}

TEST_CASE("bf16 compute gives fp32 logits close to the fp32 model's") {
  at::NoGradGuard no_grad;
  for (const auto& name : test::tiny_names()) {
    CAPTURE(name);
    auto f32 = test::tiny_model(name, 7, at::kFloat);
    auto bf16 = test::tiny_model(name, 7, at::kBFloat16);
    ForwardInputs in;
    in.tokens = test::random_tokens(1, 8, f32->config().vocab_size);
    const auto a = f32->forward(in).logits, b = bf16->forward(in).logits;
    CHECK((b.scalar_type() == at::kFloat));
    CHECK(at::isfinite(b).all().item<bool>());
    // Dense models only: in an MoE a rounding difference may flip a routing decision.
    if (!f32->config().is_moe()) CHECK(rel_err(b, a) < 0.05);
  }
}
