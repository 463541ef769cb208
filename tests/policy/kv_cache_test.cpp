// KV cache: incremental decoding equals one full forward (relative error <= 1e-5) for every
// architecture, for left-padded batches, for sliding windows with sinks (with a bounded
// cache), and after duplicating rows (one prompt, G completions).
#include <ATen/ATen.h>

#include "policy/kv_cache.h"
#include "policy/layers/attention.h"
#include "tests/policy/tiny_models.h"

#include <doctest/doctest.h>  // last: glog (via ATen) defines CHECK too

using namespace rlft;
using namespace rlft::policy;
using rlft::test::rel_err;

namespace {

at::Tensor full_logits(CausalLM& model, const at::Tensor& tokens, const at::Tensor& mask = {}) {
  ForwardInputs in;
  in.tokens = tokens;
  in.attention_mask = mask;
  return model->forward(in).logits;
}

// Feeds `tokens` [B, T] in chunks of the given sizes through a fresh cache.
at::Tensor chunked_logits(CausalLM& model, const at::Tensor& tokens, const std::vector<int64_t>& chunks,
                          const at::Tensor& mask = {}, KvCache** keep = nullptr) {
  static std::unique_ptr<KvCache> held;
  held = model->make_cache(tokens.size(0));
  std::vector<at::Tensor> parts;
  int64_t t = 0;
  for (int64_t n : chunks) {
    ForwardInputs in;
    in.tokens = tokens.narrow(1, t, n);
    if (mask.defined()) in.attention_mask = mask.narrow(1, t, n);
    in.cache = held.get();
    parts.push_back(model->forward(in).logits);
    t += n;
  }
  if (keep) *keep = held.get();
  return at::cat(parts, 1);
}

// A fresh cache that has read `tokens` [B, T].
std::unique_ptr<KvCache> prefilled(CausalLM& model, const at::Tensor& tokens) {
  auto cache = model->make_cache(tokens.size(0));
  ForwardInputs in;
  in.tokens = tokens;
  in.cache = cache.get();
  model->forward(in);
  return cache;
}

// Feeds `tokens` [B, T] to `cache`; the logits [B, T, V].
at::Tensor continued(CausalLM& model, KvCache& cache, const at::Tensor& tokens) {
  ForwardInputs in;
  in.tokens = tokens;
  in.cache = &cache;
  return model->forward(in).logits;
}

std::vector<int64_t> ones(int64_t n) {
  return std::vector<int64_t>(static_cast<size_t>(n), 1);
}

}  // namespace

TEST_CASE("incremental decoding with the KV cache gives the logits of one full forward") {
  at::NoGradGuard no_grad;
  for (const auto& name : test::tiny_names()) {
    CAPTURE(name);
    auto model = test::tiny_model(name);
    const auto tokens = test::random_tokens(2, 11, model->config().vocab_size);
    const auto full = full_logits(model, tokens);
    CHECK(rel_err(chunked_logits(model, tokens, ones(11)), full) <= 1e-5);
    CHECK(rel_err(chunked_logits(model, tokens, {5, 1, 3, 2}), full) <= 1e-5);
    CHECK(rel_err(chunked_logits(model, tokens, {11}), full) <= 1e-5);
  }
}

TEST_CASE("a left-padded batch gives each sequence the logits it has alone, full and incremental") {
  at::NoGradGuard no_grad;
  for (const auto& name : test::tiny_names()) {
    CAPTURE(name);
    auto model = test::tiny_model(name);
    const int64_t V = model->config().vocab_size;
    const std::vector<int64_t> lengths{9, 6, 3};
    const int64_t T = 9, prompt = 6;  // rows: a prompt (left-padded to 6), then 3 decode steps
    const auto seqs = test::random_tokens(3, T, V, 5);
    auto tokens = at::zeros({3, T}, at::kLong);
    auto mask = at::zeros({3, T}, at::kBool);
    for (int64_t b = 0; b < 3; ++b) {
      const int64_t pad = T - lengths[b];
      tokens[b].narrow(0, pad, lengths[b]).copy_(seqs[b].narrow(0, 0, lengths[b]));
      mask[b].narrow(0, pad, lengths[b]).fill_(true);
    }
    const auto batch_full = full_logits(model, tokens, mask);
    const auto batch_step = chunked_logits(model, tokens, {prompt, 1, 1, 1}, mask);
    for (int64_t b = 0; b < 3; ++b) {
      CAPTURE(b);
      const int64_t pad = T - lengths[b];
      const auto alone = full_logits(model, seqs[b].narrow(0, 0, lengths[b]).unsqueeze(0))[0];
      CHECK(rel_err(batch_full[b].narrow(0, pad, lengths[b]), alone) <= 1e-5);
      CHECK(rel_err(batch_step[b].narrow(0, pad, lengths[b]), alone) <= 1e-5);
    }
  }
}

TEST_CASE("sliding window with sinks: incremental equals full, and the cache stays bounded") {
  at::NoGradGuard no_grad;
  for (const std::string name : {"qwen2", "deepseek-v3"}) {
    CAPTURE(name);
    auto config = test::tiny_config(name, {"model.use_sliding_window=true", "model.sliding_window=6",
                                           "model.max_window_layers=1", "model.num_sink_tokens=2"});
    auto model = test::tiny_model(config);
    const int64_t T = 150;
    const auto tokens = test::random_tokens(1, T, config.vocab_size, 9);
    const auto full = full_logits(model, tokens);
    KvCache* cache = nullptr;
    const auto step = chunked_logits(model, tokens, ones(T), {}, &cache);
    CHECK(rel_err(step, full) <= 1e-5);
    CHECK(cache->layer(0).length() == T);   // full attention: every token
    CHECK(cache->layer(1).length() <= 65);  // window 6 + 2 sinks: bounded by max(2·8, 64) + 1
    // The window changes the result: without it the logits differ.
    auto wide = test::tiny_model(test::tiny_config(name, {"model.use_sliding_window=false"}));
    CHECK(rel_err(full_logits(wide, tokens), full) > 1e-3);
  }
}

TEST_CASE("the window mask: causal, window W, sinks, padding") {
  // Query positions 0..5, keys 0..5 plus one padding slot; W = 3, 1 sink.
  const auto q = at::arange(6, at::kLong).unsqueeze(0);
  const auto k = at::cat({at::tensor({-1L}), at::arange(6, at::kLong)}).unsqueeze(0);
  const auto m = attention_mask(q, k, 3, 1)[0][0].to(at::kInt);
  const auto expected = at::tensor({0, 1, 0, 0, 0, 0, 0,   // q0 sees k0
                                    0, 1, 1, 0, 0, 0, 0,   // q1 sees k0 k1
                                    0, 1, 1, 1, 0, 0, 0,   // q2 sees k0..k2
                                    0, 1, 1, 1, 1, 0, 0,   // q3: k1..k3 in the window, k0 a sink
                                    0, 1, 0, 1, 1, 1, 0,   // q4: k2..k4, sink k0
                                    0, 1, 0, 0, 1, 1, 1},  // q5: k3..k5, sink k0
                                   at::kInt)
                            .view({6, 7});
  CHECK(at::equal(m, expected));
}

TEST_CASE("MLA caches only the normalised latent and the rotated RoPE key") {
  at::NoGradGuard no_grad;
  auto model = test::tiny_model("deepseek-v3");
  const auto& c = model->config();
  auto cache = model->make_cache(2);
  ForwardInputs in;
  in.tokens = test::random_tokens(2, 5, c.vocab_size);
  in.cache = cache.get();
  model->forward(in);
  // Per layer: [B, S, d_c] + [B, S, d_R] floats plus the positions [B, S] int64.
  const int64_t per_slot = (c.mla->kv_lora_rank + c.mla->qk_rope_head_dim) * 4 + 8;
  CHECK(cache->layer(0).length() == 5);
  CHECK(cache->layer(0).bytes() % per_slot == 0);
  CHECK(cache->layer(0).bytes() / per_slot / 2 >= 5);  // capacity >= length
  CHECK(at::equal(cache->next_positions(), at::tensor({5L, 5L})));
}

TEST_CASE("duplicated cache rows continue like separate prefills (one prompt, G completions)") {
  at::NoGradGuard no_grad;
  for (const std::string name : {"deepseek-v3", "qwen3-moe"}) {
    CAPTURE(name);
    auto model = test::tiny_model(name);
    const int64_t V = model->config().vocab_size;
    const auto prompt = test::random_tokens(1, 7, V, 3);
    const auto next = test::random_tokens(3, 2, V, 4);  // three different continuations
    auto cache = model->make_cache(1);
    ForwardInputs in;
    in.tokens = prompt;
    in.cache = cache.get();
    model->forward(in);
    cache->select_rows(at::tensor({0L, 0L, 0L}));
    ForwardInputs step;
    step.tokens = next;
    step.cache = cache.get();
    const auto logits = model->forward(step).logits;  // [3, 2, V]
    for (int64_t g = 0; g < 3; ++g) {
      const auto alone = full_logits(model, at::cat({prompt[0], next[g]}).unsqueeze(0))[0].narrow(0, 7, 2);
      CHECK(rel_err(logits[g], alone) <= 1e-5);
    }
  }
}

TEST_CASE("last-position logits under left padding are each row's last token") {
  at::NoGradGuard no_grad;
  auto model = test::tiny_model("qwen2-moe");
  const auto tokens = test::random_tokens(2, 6, model->config().vocab_size);
  auto mask = at::ones({2, 6}, at::kBool);
  mask[1].narrow(0, 0, 2).fill_(false);
  ForwardInputs in;
  in.tokens = tokens;
  in.attention_mask = mask;
  const auto all = model->forward(in).logits;
  in.logits = LogitsScope::kLast;
  const auto last = model->forward(in).logits;
  CHECK(last.sizes() == at::IntArrayRef({2, 1, model->config().vocab_size}));
  CHECK(rel_err(last, all.narrow(1, 5, 1)) <= 1e-6);
}

TEST_CASE("a forgotten tail is replaced as if it had never been fed (speculative decoding's rejections)") {
  // Row 0 forgets its last 3 tokens, row 1 its last 1; both then read other tokens. The
  // logits must equal one full forward over what each row kept plus the new tokens.
  at::NoGradGuard no_grad;
  for (const auto& name : test::tiny_names()) {
    CAPTURE(name);
    auto model = test::tiny_model(name);
    const int64_t V = model->config().vocab_size;
    const auto first = test::random_tokens(2, 8, V, 3);
    const auto next = test::random_tokens(2, 3, V, 4);
    auto cache = prefilled(model, first);
    cache->forget(at::tensor({5L, 7L}));
    CHECK(at::equal(cache->next_positions(), at::tensor({5L, 7L})));
    const auto got = continued(model, *cache, next);  // [2, 3, V]
    for (int64_t b = 0; b < 2; ++b) {
      const int64_t kept = b == 0 ? 5 : 7;
      const auto seq = at::cat({first[b].narrow(0, 0, kept), next[b]}).unsqueeze(0);
      const auto want = full_logits(model, seq).narrow(1, kept, 3);
      CHECK(rel_err(got[b].unsqueeze(0), want) <= 1e-5);
    }
    // Forgetting every row's tail gives its slots back.
    const int64_t before = cache->length();
    cache->forget(at::tensor({6L, 8L}));
    CHECK(cache->length() < before);
  }
}

TEST_CASE("rows appended from another cache continue as if decoded alone (continuous batching)") {
  // A batch 9 tokens in and a newcomer with a 4-token prompt: after append_rows, one more
  // token each gives each row the logits of its own full forward.
  at::NoGradGuard no_grad;
  for (const auto& name : test::tiny_names()) {
    CAPTURE(name);
    auto model = test::tiny_model(name);
    const int64_t V = model->config().vocab_size;
    const auto old_rows = test::random_tokens(2, 9, V, 5);
    const auto newcomer = test::random_tokens(1, 4, V, 6);
    auto cache = prefilled(model, old_rows);
    cache->append_rows(*prefilled(model, newcomer));
    CHECK(cache->batch_size() == 3);
    CHECK(at::equal(cache->next_positions(), at::tensor({9L, 9L, 4L})));
    const auto next = test::random_tokens(3, 2, V, 7);
    const auto got = continued(model, *cache, next);  // [3, 2, V]
    std::vector<at::Tensor> seqs;
    for (int64_t b = 0; b < 3; ++b) {
      const auto prefix = b < 2 ? old_rows[b] : newcomer[0];
      seqs.push_back(at::cat({prefix, next[b]}));
      const auto want = full_logits(model, seqs.back().unsqueeze(0)).narrow(1, prefix.size(0), 2);
      CHECK(rel_err(got[b].unsqueeze(0), want) <= 1e-5);
    }
    // Row 0 finishes: the newcomer takes its place (moved in place), then a third row joins
    // into the freed capacity; every row continues as alone.
    cache->select_rows(at::tensor({2L, 1L}));
    CHECK(cache->batch_size() == 2);
    const auto third_prompt = test::random_tokens(1, 6, V, 8);
    cache->append_rows(*prefilled(model, third_prompt));
    const auto last = test::random_tokens(3, 1, V, 9);
    const auto after = continued(model, *cache, last);  // [3, 1, V]
    const std::vector<at::Tensor> prefixes{seqs[2], seqs[1], third_prompt[0]};
    for (int64_t b = 0; b < 3; ++b) {
      const auto seq = at::cat({prefixes[static_cast<size_t>(b)], last[b]}).unsqueeze(0);
      const auto want = full_logits(model, seq).narrow(1, seq.size(1) - 1, 1);
      CHECK(rel_err(after[b].unsqueeze(0), want) <= 1e-5);
    }
  }
}
