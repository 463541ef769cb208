#include "rl/sequence_batch.h"

#include <fmt/ranges.h>

#include <algorithm>

#include "core/error.h"

namespace rlft::rl {

SequenceBatch make_sequence_batch(const std::vector<Sequence>& all, RowRange range, const at::Device& device) {
  RLFT_CHECK(range.begin >= 0 && range.begin <= range.end && range.end <= static_cast<int64_t>(all.size()),
             "rows [{}, {}) of {} sequences", range.begin, range.end, all.size());
  RLFT_CHECK(range.rows() > 0, "a training batch needs at least one sequence");
  const Sequence* sequences = all.data() + range.begin;
  const int64_t B = range.rows();
  int64_t T = 0;
  for (int64_t i = 0; i < B; ++i) {
    const auto& s = sequences[i];
    RLFT_CHECK(!s.prompt.empty() && !s.completion.empty(), "a training sequence needs a prompt and a completion");
    RLFT_CHECK(s.token_mask.empty() || s.token_mask.size() == s.completion.size(),
               "token_mask has {} entries for {} completion tokens", s.token_mask.size(), s.completion.size());
    T = std::max<int64_t>(T, static_cast<int64_t>(s.prompt.size() + s.completion.size()));
  }
  const bool routed = !sequences[0].routing.empty();
  const size_t M = sequences[0].routing.size();
  int64_t K = routed ? sequences[0].routing.front().size(1) : 0;

  SequenceBatch b;
  auto tokens = at::zeros({B, T}, at::kLong);
  auto attn = at::zeros({B, T}, at::kBool);
  auto mask = at::zeros({B, T - 1}, at::kFloat);
  auto comp = at::zeros({B, T - 1}, at::kBool);
  std::vector<at::Tensor> routing;
  for (size_t m = 0; m < M; ++m) routing.push_back(at::zeros({B, T, K}, at::kLong));
  auto tk = tokens.accessor<int64_t, 2>();
  auto am = attn.accessor<bool, 2>();
  auto mk = mask.accessor<float, 2>();
  auto cp = comp.accessor<bool, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const auto& s = sequences[i];
    RLFT_CHECK(s.routing.size() == M, "sequence {} has routing for {} layers, sequence 0 for {}", i, s.routing.size(),
               M);
    const int64_t P = static_cast<int64_t>(s.prompt.size()), C = static_cast<int64_t>(s.completion.size());
    const int64_t start = T - P - C;
    for (int64_t j = 0; j < P; ++j) tk[i][start + j] = s.prompt[j];
    for (int64_t j = 0; j < C; ++j) tk[i][start + P + j] = s.completion[j];
    for (int64_t j = start; j < T; ++j) am[i][j] = true;
    for (int64_t j = 0; j < C; ++j) {
      // Completion token j sits at column start + P + j; its log-prob at column start + P + j - 1.
      cp[i][start + P + j - 1] = true;
      mk[i][start + P + j - 1] = s.token_mask.empty() || s.token_mask[j] ? 1.0f : 0.0f;
    }
    for (size_t m = 0; m < M; ++m) {
      RLFT_CHECK(s.routing[m].dim() == 2 && s.routing[m].size(0) == P + C && s.routing[m].size(1) == K,
                 "sequence {}: routing of MoE layer {} is {}, expected [{}, {}]", i, m, s.routing[m].sizes(), P + C, K);
      routing[m][i].narrow(0, start, P + C).copy_(s.routing[m]);
    }
    b.prompt_lengths.push_back(P);
    b.completion_lengths.push_back(C);
  }
  b.tokens = tokens.to(device);
  b.attention_mask = attn.to(device);
  b.mask = mask.to(device);
  b.completion = comp.to(device);
  for (auto& r : routing) b.routing.push_back(r.to(device));
  return b;
}

SequenceBatch make_sequence_batch(const std::vector<Sequence>& sequences, const at::Device& device) {
  return make_sequence_batch(sequences, RowRange{0, static_cast<int64_t>(sequences.size())}, device);
}

at::Tensor SequenceBatch::scatter(const at::Tensor& aligned) const {
  const int64_t B = rows(), W = tokens.size(1) - 1;
  RLFT_CHECK(aligned.dim() == 2 && aligned.size(0) == B, "scatter: values {} for {} sequences", aligned.sizes(), B);
  const auto v = aligned.to(at::kCPU, at::kFloat).contiguous();
  auto a = v.accessor<float, 2>();
  auto out = at::zeros({B, W}, at::kFloat);
  auto o = out.accessor<float, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const int64_t C = completion_lengths[i];
    RLFT_CHECK(C <= v.size(1), "scatter: row {} has {} completion tokens, the values {}", i, C, v.size(1));
    for (int64_t j = 0; j < C; ++j) o[i][W - C + j] = a[i][j];
  }
  return out.to(tokens.device());
}

void SequenceBatch::gather_into(const at::Tensor& values, at::Tensor aligned) const {
  const auto v = values.detach().to(at::kCPU, at::kFloat).contiguous();
  const int64_t B = rows(), W = v.size(1);
  RLFT_CHECK(
      aligned.dim() == 2 && aligned.size(0) == B && aligned.scalar_type() == at::kFloat && aligned.device().is_cpu(),
      "gather_into: a [{}, C] float32 CPU tensor expected, got {}", B, aligned.sizes());
  auto a = v.accessor<float, 2>();
  auto o = aligned.accessor<float, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const int64_t C = completion_lengths[i];
    RLFT_CHECK(C <= aligned.size(1), "gather_into: row {} has {} completion tokens, room for {}", i, C,
               aligned.size(1));
    for (int64_t j = 0; j < C; ++j) o[i][j] = a[i][W - C + j];
  }
}

PolicyForward policy_forward(policy::CausalLM& model, const SequenceBatch& batch, const PolicyForwardOptions& options) {
  policy::ForwardInputs in;
  in.tokens = batch.tokens;
  in.attention_mask = batch.attention_mask;
  if (options.replay_routing && !batch.routing.empty()) in.replay_routing = &batch.routing;
  in.balance = options.balance;
  in.mtp = options.mtp;
  in.logits = policy::LogitsScope::kNone;
  in.return_hidden = true;
  PolicyForward f;
  f.out = model->forward(in);
  // Only the completion positions go through the LM head, chunk by chunk: [n] flat indices
  // into [B, T - 1]; every other entry is 0 (the losses mask it out).
  const int64_t B = batch.rows(), W = batch.tokens.size(1) - 1, D = f.out.hidden.size(2);
  const auto rows = batch.completion.reshape({-1}).nonzero().squeeze(1);                       // [n]
  const auto hidden = f.out.hidden.narrow(1, 0, W).reshape({B * W, D}).index_select(0, rows);  // [n, D]
  const auto targets = batch.tokens.narrow(1, 1, W).reshape({-1}).index_select(0, rows);       // [n]
  const auto r = model->token_logprobs(hidden, targets, options.temperature, options.entropy);
  const auto place = [&](const at::Tensor& values) {  // [n] -> [B, T - 1]
    return at::zeros({B * W}, values.options()).index_copy(0, rows, values).view({B, W});
  };
  f.logp = place(r.logp);
  if (options.entropy) f.entropy = place(r.entropy);
  f.out.hidden = at::Tensor();  // the caller asked for log-probs, not [B, T, D] activations
  return f;
}

}  // namespace rlft::rl
