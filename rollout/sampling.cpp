// Sampling steps and the chain. Every step works on fp32 logits [N, V] and marks removed
// tokens with -inf, so steps compose in any order and softmax of the result is the
// truncated, renormalised distribution.
#include "rollout/sampling.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <limits>

#include <fmt/ranges.h>

#include "core/config.h"
#include "core/error.h"

namespace rlft::rollout {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void check_logits(const at::Tensor& logits) {
  RLFT_CHECK(logits.defined() && logits.dim() == 2, "sampling: logits must be [N, V], got {}",
             logits.defined() ? logits.sizes().vec() : std::vector<int64_t>{});
}

template <typename Fn>
class FnStep : public SamplingStep {
 public:
  FnStep(std::string name, Fn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  std::string name() const override { return name_; }
  at::Tensor apply(const at::Tensor& logits, const StepContext& context) const override { return fn_(logits, context); }

 private:
  std::string name_;
  Fn fn_;
};

template <typename Fn>
std::unique_ptr<SamplingStep> make_step(std::string name, Fn fn) {
  return std::make_unique<FnStep<Fn>>(std::move(name), std::move(fn));
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace

SamplingOptions SamplingOptions::from_config(const ConfigView& s) {
  SamplingOptions o;
  o.temperature = s.get<double>("temperature", o.temperature);
  o.top_k = s.get<int64_t>("top_k", o.top_k);
  o.top_p = s.get<double>("top_p", o.top_p);
  o.min_p = s.get<double>("min_p", o.min_p);
  o.repetition_penalty = s.get<double>("repetition_penalty", o.repetition_penalty);
  o.presence_penalty = s.get<double>("presence_penalty", o.presence_penalty);
  return o;
}

void SamplingOptions::validate() const {
  RLFT_CHECK_OPTION(std::isfinite(temperature) && temperature >= 0.0, "temperature", temperature,
                    "must be >= 0 (0 = greedy)");
  RLFT_CHECK_OPTION(top_k >= 0, "top_k", top_k, "must be >= 0 (0 = off)");
  RLFT_CHECK_OPTION(top_p > 0.0 && top_p <= 1.0, "top_p", top_p, "must be in (0, 1] (1 = off)");
  RLFT_CHECK_OPTION(min_p >= 0.0 && min_p < 1.0, "min_p", min_p, "must be in [0, 1) (0 = off)");
  RLFT_CHECK_OPTION(std::isfinite(repetition_penalty) && repetition_penalty > 0.0, "repetition_penalty",
                    repetition_penalty, "must be > 0 (1 = off)");
  RLFT_CHECK_OPTION(std::isfinite(presence_penalty), "presence_penalty", presence_penalty, "must be finite (0 = off)");
}

at::Tensor apply_temperature(const at::Tensor& logits, double temperature) {
  check_logits(logits);
  RLFT_CHECK(temperature > 0.0, "temperature step: temperature = {} must be > 0", temperature);
  return logits / temperature;
}

at::Tensor apply_top_k(const at::Tensor& logits, int64_t k) {
  check_logits(logits);
  if (k <= 0 || k >= logits.size(1)) return logits;
  const auto kth = std::get<0>(logits.topk(k, 1)).narrow(1, k - 1, 1);  // [N, 1]
  return logits.masked_fill(logits < kth, kNegInf);                     // ties with the k-th stay
}

at::Tensor apply_top_p(const at::Tensor& logits, double p) {
  check_logits(logits);
  if (p >= 1.0) return logits;
  auto sorted = logits.sort(1, /*descending=*/true);
  const auto& values = std::get<0>(sorted);  // [N, V]
  const auto& order = std::get<1>(sorted);   // [N, V]
  const auto probs = values.softmax(1);
  const auto before = probs.cumsum(1) - probs;  // mass of the strictly better tokens
  const auto drop_sorted = before >= p;         // the first token always stays
  const auto drop = at::zeros_like(drop_sorted).scatter(1, order, drop_sorted);
  return logits.masked_fill(drop, kNegInf);
}

at::Tensor apply_min_p(const at::Tensor& logits, double min_p) {
  check_logits(logits);
  if (min_p <= 0.0) return logits;
  const auto probs = logits.softmax(1);
  const auto top = std::get<0>(probs.max(1, /*keepdim=*/true));  // [N, 1]
  return logits.masked_fill(probs < top * min_p, kNegInf);
}

at::Tensor apply_repetition_penalty(const at::Tensor& logits, const at::Tensor& seen_counts, double penalty) {
  check_logits(logits);
  RLFT_CHECK(seen_counts.defined() && seen_counts.sizes() == logits.sizes(),
             "repetition_penalty step: seen counts {} for logits {}",
             seen_counts.defined() ? seen_counts.sizes().vec() : std::vector<int64_t>{}, logits.sizes());
  if (penalty == 1.0) return logits;
  const auto penalised = at::where(logits > 0, logits / penalty, logits * penalty);
  return at::where(seen_counts > 0, penalised, logits);
}

at::Tensor apply_presence_penalty(const at::Tensor& logits, const at::Tensor& generated_counts, double penalty) {
  check_logits(logits);
  RLFT_CHECK(generated_counts.defined() && generated_counts.sizes() == logits.sizes(),
             "presence_penalty step: generated counts {} for logits {}",
             generated_counts.defined() ? generated_counts.sizes().vec() : std::vector<int64_t>{}, logits.sizes());
  if (penalty == 0.0) return logits;
  return logits - (generated_counts > 0).to(logits.scalar_type()) * penalty;
}

void register_builtin_sampling_steps(StepRegistry& registry) {
  registry.add("repetition_penalty", [](const SamplingOptions& o) -> std::unique_ptr<SamplingStep> {
    if (o.repetition_penalty == 1.0) return nullptr;
    const double pen = o.repetition_penalty;
    return make_step("repetition_penalty", [pen](const at::Tensor& l, const StepContext& c) {
      return apply_repetition_penalty(l, c.seen_counts, pen);
    });
  });
  registry.add("presence_penalty", [](const SamplingOptions& o) -> std::unique_ptr<SamplingStep> {
    if (o.presence_penalty == 0.0) return nullptr;
    const double pen = o.presence_penalty;
    return make_step("presence_penalty", [pen](const at::Tensor& l, const StepContext& c) {
      return apply_presence_penalty(l, c.generated_counts, pen);
    });
  });
  registry.add("temperature", [](const SamplingOptions& o) -> std::unique_ptr<SamplingStep> {
    if (o.temperature == 1.0 || o.greedy()) return nullptr;
    const double t = o.temperature;
    return make_step("temperature", [t](const at::Tensor& l, const StepContext&) { return apply_temperature(l, t); });
  });
  registry.add("top_k", [](const SamplingOptions& o) -> std::unique_ptr<SamplingStep> {
    if (o.top_k == 0) return nullptr;
    const int64_t k = o.top_k;
    return make_step("top_k", [k](const at::Tensor& l, const StepContext&) { return apply_top_k(l, k); });
  });
  registry.add("top_p", [](const SamplingOptions& o) -> std::unique_ptr<SamplingStep> {
    if (o.top_p == 1.0) return nullptr;
    const double p = o.top_p;
    return make_step("top_p", [p](const at::Tensor& l, const StepContext&) { return apply_top_p(l, p); });
  });
  registry.add("min_p", [](const SamplingOptions& o) -> std::unique_ptr<SamplingStep> {
    if (o.min_p == 0.0) return nullptr;
    const double m = o.min_p;
    return make_step("min_p", [m](const at::Tensor& l, const StepContext&) { return apply_min_p(l, m); });
  });
}

StepRegistry builtin_sampling_steps() {
  StepRegistry r("sampling step");
  register_builtin_sampling_steps(r);
  return r;
}

const std::vector<std::string>& default_step_order() {
  static const std::vector<std::string> order{
      "repetition_penalty", "presence_penalty", "temperature", "top_k", "top_p", "min_p"};
  return order;
}

SamplingChain::SamplingChain(const SamplingOptions& options, const StepRegistry& registry,
                             const std::vector<std::string>& order)
    : options_(options) {
  options_.validate();
  for (const auto& name : order)
    if (auto step = registry.get(name)(options_)) steps_.push_back(std::move(step));
}

at::Tensor SamplingChain::apply(const at::Tensor& logits, const StepContext& context) const {
  at::Tensor x = logits.to(at::kFloat);
  for (const auto& s : steps_) x = s->apply(x, context);
  return x;
}

namespace {

// Rows sampled together: their float64 probabilities take about 32 MB (a [256, 151936]
// batch at once took 0.3 GB for the probabilities alone, and as much again for each step).
int64_t sample_chunk_rows(int64_t V) {
  return std::max<int64_t>(1, (32 << 20) / (8 * std::max<int64_t>(V, 1)));
}

StepContext rows_of(const StepContext& c, int64_t begin, int64_t n) {
  StepContext r;
  if (c.seen_counts.defined()) r.seen_counts = c.seen_counts.narrow(0, begin, n);
  if (c.generated_counts.defined()) r.generated_counts = c.generated_counts.narrow(0, begin, n);
  return r;
}

}  // namespace

at::Tensor SamplingChain::sample(const at::Tensor& logits, const StepContext& context,
                                 std::vector<at::Generator>& gens) const {
  check_logits(logits);
  const int64_t N = logits.size(0), chunk = sample_chunk_rows(logits.size(1));
  RLFT_CHECK(options_.greedy() || static_cast<int64_t>(gens.size()) == N, "sampling: {} generators for {} rows",
             gens.size(), N);
  if (N <= chunk) return sample_rows(logits, context, gens.data());
  // Every step is row-wise and each row draws from its own generator: chunks give the same draws.
  std::vector<at::Tensor> parts;
  for (int64_t b = 0; b < N; b += chunk) {
    const int64_t n = std::min(chunk, N - b);
    parts.push_back(sample_rows(logits.narrow(0, b, n), rows_of(context, b, n), gens.data() + b));
  }
  return at::cat(parts);
}

at::Tensor SamplingChain::sample_rows(const at::Tensor& logits, const StepContext& context, at::Generator* gens) const {
  const auto x = apply(logits, context);  // [N, V]
  if (options_.greedy()) return x.argmax(1);
  return draw_tokens(x.softmax(1), gens);
}

at::Tensor draw_tokens(const at::Tensor& weights, at::Generator* gens) {
  const int64_t N = weights.size(0), V = weights.size(1);
  // Draws on the CPU with each row's own generator: the same stream on every device.
  const auto w = weights.to(at::kCPU, at::kDouble).contiguous();  // [N, V]
  auto out = at::empty({N}, at::TensorOptions().dtype(at::kLong));
  auto* o = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) {
    const double* p = w.data_ptr<double>() + i * V;
    double total = 0.0;
    for (int64_t v = 0; v < V; ++v) total += p[v] > 0.0 ? p[v] : 0.0;
    const double u = at::empty({1}, at::kDouble).uniform_(0.0, 1.0, gens[i]).item<double>() * total;
    // Inverse CDF; the last token with nonzero weight catches rounding at the top.
    double acc = 0.0;
    int64_t pick = -1, last = 0;
    for (int64_t v = 0; v < V; ++v) {
      if (p[v] <= 0.0) continue;
      last = v;
      acc += p[v];
      if (u < acc) {
        pick = v;
        break;
      }
    }
    o[i] = pick >= 0 ? pick : last;
  }
  return out.to(weights.device());
}

std::vector<std::string> SamplingChain::step_names() const {
  std::vector<std::string> out;
  for (const auto& s : steps_) out.push_back(s->name());
  return out;
}

bool SamplingChain::needs_counts() const {
  return options_.repetition_penalty != 1.0 || options_.presence_penalty != 0.0;
}

at::Generator make_row_generator(uint64_t seed, uint64_t request, uint64_t sample) {
  const uint64_t s = splitmix64(splitmix64(splitmix64(seed) ^ request) ^ (sample * 0xD1B54A32D192ED03ULL));
  return at::make_generator<at::CPUGeneratorImpl>(s);
}

}  // namespace rlft::rollout
