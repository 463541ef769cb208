#include "rollout/logprobs.h"

#include <fmt/ranges.h>

#include "core/error.h"

namespace rlft::rollout {

at::Tensor token_logprobs(const at::Tensor& logits, const at::Tensor& tokens, double temperature) {
  RLFT_CHECK(logits.dim() == tokens.dim() + 1 && logits.sizes().slice(0, tokens.dim()) == tokens.sizes(),
             "token_logprobs: logits {} do not match tokens {}", logits.sizes(), tokens.sizes());
  const auto one = [temperature](const at::Tensor& l, const at::Tensor& t) {
    auto x = l.to(at::kFloat);
    if (temperature > 0.0 && temperature != 1.0) x = x / temperature;
    return x.log_softmax(-1).gather(-1, t.to(x.device(), at::kLong).unsqueeze(-1)).squeeze(-1);
  };
  // A rollout step's [N, V] rows in chunks of about 32 MB (the copies of a [256, 151936]
  // batch took 0.3 GB); each row's value is the same either way.
  const int64_t V = logits.size(-1), rows = logits.numel() / std::max<int64_t>(V, 1);
  const int64_t chunk = std::max<int64_t>(1, (32 << 20) / (4 * std::max<int64_t>(V, 1)));
  if (logits.dim() != 2 || rows <= chunk) return one(logits, tokens);
  std::vector<at::Tensor> parts;
  for (int64_t b = 0; b < rows; b += chunk) {
    const int64_t n = std::min(chunk, rows - b);
    parts.push_back(one(logits.narrow(0, b, n), tokens.narrow(0, b, n)));
  }
  return at::cat(parts);
}

at::Tensor shifted_token_logprobs(const at::Tensor& logits, const at::Tensor& tokens, double temperature) {
  RLFT_CHECK(logits.dim() == 3 && tokens.dim() == 2 && tokens.size(1) >= 2,
             "shifted_token_logprobs: logits [B, T, V] and tokens [B, T >= 2], got {} and {}", logits.sizes(),
             tokens.sizes());
  const int64_t T = tokens.size(1);
  return token_logprobs(logits.narrow(1, 0, T - 1), tokens.narrow(1, 1, T - 1), temperature);
}

}  // namespace rlft::rollout
