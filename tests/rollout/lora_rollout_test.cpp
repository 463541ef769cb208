// Rollout with LoRA adapters, unmerged: the recorded log-probs equal one training forward of
// the adapted model (the decode paths — KV cache, experts through their modules, MLA's
// absorbed attention with kv_b_proj's adapter — compute what training computes).
#include <torch/torch.h>

#include "policy/lora.h"
#include "rollout/generator.h"
#include "tests/rollout/rollout_test_util.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

using namespace rlft;
using namespace rlft::rollout;

TEST_CASE("rollout with adapters records the adapted policy's log-probs (training forward within 1e-5)") {
  for (const std::string name : {"qwen2", "qwen3-moe", "deepseek-v3"}) {
    CAPTURE(name);
    auto model = test::tiny_model(name);
    policy::LoraOptions o;
    o.rank = 4;
    o.alpha = 8;
    policy::attach_lora(*model, o, 3);
    {
      at::NoGradGuard no_grad;
      int64_t i = 0;
      for (auto& p : model->named_parameters())
        if (p.key().find(".lora_B.") != std::string::npos)
          p.value().copy_(test::seeded_randn(p.value().sizes().vec(), 100 + i++) * 0.05);
    }
    const bool moe = model->config().is_moe();
    Generator gen(model);
    SamplingOptions s;
    s.temperature = 0.8;
    GenerateOptions g;
    g.max_new_tokens = 7;
    g.record_routing = moe;
    g.seed = 5;
    const auto requests = test::make_requests({3, 9, 5}, model->config().vocab_size, 3);
    const auto groups = gen.generate(requests, s, g);
    double worst = 0.0, off = 0.0;
    at::NoGradGuard no_grad;
    for (const auto& grp : groups)
      for (const auto& smp : grp.samples) {
        const auto train = test::training_logprobs(model, grp.prompt, smp, 0.8, moe);
        worst = std::max(worst, (train - test::as_tensor(smp.logprobs)).abs().max().item<double>());
        policy::AdaptersDisabled base(*model);
        const auto plain = test::training_logprobs(model, grp.prompt, smp, 0.8, false);
        off = std::max(off, (plain - test::as_tensor(smp.logprobs)).abs().max().item<double>());
      }
    MESSAGE(name << ": max |rollout - training| " << worst << ", against the base " << off);
    CHECK(worst <= 1e-5);
    CHECK(off > 1e-3);  // the adapters are in the recorded numbers
  }
}
