#include "rollout/logprobs.h"

#include <fmt/ranges.h>

#include "core/error.h"

namespace rlft::rollout {

at::Tensor token_logprobs(const at::Tensor& logits, const at::Tensor& tokens, double temperature) {
  RLFT_CHECK(logits.dim() == tokens.dim() + 1 && logits.sizes().slice(0, tokens.dim()) == tokens.sizes(),
             "token_logprobs: logits {} do not match tokens {}", logits.sizes(), tokens.sizes());
  auto x = logits.to(at::kFloat);
  if (temperature > 0.0 && temperature != 1.0) x = x / temperature;
  return x.log_softmax(-1).gather(-1, tokens.to(x.device(), at::kLong).unsqueeze(-1)).squeeze(-1);
}

at::Tensor shifted_token_logprobs(const at::Tensor& logits, const at::Tensor& tokens, double temperature) {
  RLFT_CHECK(logits.dim() == 3 && tokens.dim() == 2 && tokens.size(1) >= 2,
             "shifted_token_logprobs: logits [B, T, V] and tokens [B, T >= 2], got {} and {}", logits.sizes(),
             tokens.sizes());
  const int64_t T = tokens.size(1);
  return token_logprobs(logits.narrow(1, 0, T - 1), tokens.narrow(1, 1, T - 1), temperature);
}

}  // namespace rlft::rollout
