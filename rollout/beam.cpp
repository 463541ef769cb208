#include "rollout/beam.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace rlft::rollout {
namespace {

struct Beam {
  std::vector<int64_t> tokens;
  std::vector<float> logprobs;
  double sum = 0.0;
};

double normalise(double sum, int64_t length, double penalty) {
  return sum / std::pow(static_cast<double>(std::max<int64_t>(length, 1)), penalty);
}

}  // namespace

void BeamOptions::validate(int64_t vocab_size, const std::string& prefix) const {
  RLFT_CHECK_AS(ConfigError, num_beams >= 1, "{}.num_beams = {}: must be >= 1", prefix, num_beams);
  RLFT_CHECK_AS(ConfigError, max_new_tokens >= 1, "{}.max_new_tokens = {}: must be >= 1", prefix, max_new_tokens);
  RLFT_CHECK_AS(ConfigError, num_return >= 1 && num_return <= num_beams,
                "{}.num_return = {}: must be in [1, num_beams = {}]", prefix, num_return, num_beams);
  RLFT_CHECK_AS(ConfigError, std::isfinite(length_penalty), "{}.length_penalty = {}: must be finite", prefix,
                length_penalty);
  for (int64_t id : stop_token_ids)
    RLFT_CHECK_AS(ConfigError, id >= 0 && id < vocab_size,
                  "{}.stop_token_ids: unknown stop token {}: not in the vocabulary (ids 0..{})", prefix, id,
                  vocab_size - 1);
}

std::vector<BeamHypothesis> beam_search(policy::CausalLM& model, const std::vector<int64_t>& prompt,
                                        const BeamOptions& options) {
  const auto& config = model->config();
  options.validate(config.vocab_size);
  check_requests({Request{prompt, 1, 0}}, config.max_position_embeddings);
  std::vector<int64_t> stop = options.stop_token_ids;
  if (options.use_model_eos) stop.insert(stop.end(), config.eos_token_id.begin(), config.eos_token_id.end());
  auto is_stop = [&](int64_t t) { return std::find(stop.begin(), stop.end(), t) != stop.end(); };

  // No-grad rather than inference mode: the recorded routing tensors are fed to the
  // trainer's autograd forward, which may not save inference tensors.
  at::NoGradGuard no_grad;
  const auto device = model->options().device;
  const auto long_opts = at::TensorOptions().dtype(at::kLong);
  const int64_t nb = options.num_beams, V = config.vocab_size;
  const int64_t P = static_cast<int64_t>(prompt.size());
  const int64_t max_new = std::min(options.max_new_tokens, config.max_position_embeddings - P);

  auto cache = model->make_cache(1);
  policy::ForwardInputs in;
  in.tokens = at::tensor(prompt, long_opts).unsqueeze(0).to(device);
  in.cache = cache.get();
  in.logits = policy::LogitsScope::kLast;
  auto logp = model->forward(in).logits.select(1, 0).log_softmax(1).to(at::kCPU);  // [1, V]
  std::vector<Beam> beams(1);  // the first step expands the single prompt row
  std::vector<BeamHypothesis> done;
  auto worst_done = [&] {
    double w = std::numeric_limits<double>::infinity();
    for (const auto& h : done) w = std::min(w, h.score);
    return w;
  };
  auto add_done = [&](BeamHypothesis h) {
    done.push_back(std::move(h));
    std::sort(done.begin(), done.end(), [](const auto& a, const auto& b) { return a.score > b.score; });
    if (static_cast<int64_t>(done.size()) > nb) done.pop_back();
  };

  bool at_limit = false;
  for (int64_t step = 1; step <= max_new; ++step) {
    const int64_t rows = static_cast<int64_t>(beams.size());
    auto sums = at::empty({rows, 1}, at::kDouble);
    for (int64_t b = 0; b < rows; ++b) sums[b][0] = beams[static_cast<size_t>(b)].sum;
    const auto cand = (sums + logp.to(at::kDouble)).reshape({-1});  // [rows·V]
    const auto top = cand.topk(std::min<int64_t>(2 * nb, cand.size(0)));
    const auto values = std::get<0>(top), indices = std::get<1>(top);
    std::vector<Beam> next;
    std::vector<int64_t> parents;
    for (int64_t r = 0; r < values.size(0) && static_cast<int64_t>(next.size()) < nb; ++r) {
      const int64_t flat = indices[r].item<int64_t>();
      const int64_t parent = flat / V, token = flat % V;
      const auto& pb = beams[static_cast<size_t>(parent)];
      Beam nbm{pb.tokens, pb.logprobs, values[r].item<double>()};
      nbm.tokens.push_back(token);
      nbm.logprobs.push_back(logp[parent][token].item<float>());
      if (is_stop(token)) {
        // As HF: only a stop among the top num_beams candidates finishes a hypothesis.
        if (r < nb)
          add_done({nbm.tokens, nbm.logprobs, normalise(nbm.sum, step, options.length_penalty), FinishReason::kStop});
        continue;
      }
      next.push_back(std::move(nbm));
      parents.push_back(parent);
    }
    if (static_cast<int64_t>(done.size()) >= nb) {
      if (options.early_stopping || next.empty()) break;
      double best_live = -std::numeric_limits<double>::infinity();
      for (const auto& b : next) best_live = std::max(best_live, normalise(b.sum, step, options.length_penalty));
      if (best_live <= worst_done()) break;
    }
    if (next.empty()) break;
    beams = std::move(next);
    if (step == max_new) {
      at_limit = true;
      break;
    }
    const auto parent_idx = at::tensor(parents, long_opts).to(device);
    cache->select_rows(parent_idx);
    std::vector<int64_t> last;
    for (const auto& b : beams) last.push_back(b.tokens.back());
    policy::ForwardInputs s;
    s.tokens = at::tensor(last, long_opts).unsqueeze(1).to(device);  // [N, 1]
    s.cache = cache.get();
    s.logits = policy::LogitsScope::kLast;
    logp = model->forward(s).logits.select(1, 0).log_softmax(1).to(at::kCPU);  // [N, V]
  }
  // Live beams at the length limit compete as "length" hypotheses.
  if (at_limit)
    for (const auto& b : beams)
      add_done({b.tokens, b.logprobs, normalise(b.sum, static_cast<int64_t>(b.tokens.size()), options.length_penalty),
                FinishReason::kLength});
  if (static_cast<int64_t>(done.size()) > options.num_return) done.resize(static_cast<size_t>(options.num_return));
  return done;
}

}  // namespace rlft::rollout
