#include "policy/causal_lm.h"

#include <ATen/CPUGeneratorImpl.h>

#include "core/config.h"
#include "core/error.h"
#include "policy/arch/arch.h"
#include "policy/forward_profile.h"
#include "policy/kernels/small_gemm.h"
#include "policy/layer_checkpoint.h"
#include "policy/shape.h"

namespace rlft::policy {
namespace {

// Positions [B, T] that continue from `base` [B, 1] over the real tokens of `valid` [B, T]
// (bool), -1 on padding.
at::Tensor running_positions(const at::Tensor& base, const at::Tensor& valid) {
  return (base + valid.to(at::kLong).cumsum(1) - 1).masked_fill(valid.logical_not(), -1);
}

}  // namespace

TransformerImpl::TransformerImpl(const ModelConfig& config, const std::vector<LayerPlan>& plans,
                                 const at::TensorOptions& p) {
  embed_tokens = register_module("embed_tokens", Embedding(config.vocab_size, config.hidden_size, p));
  layers = register_module("layers", torch::nn::ModuleList());
  const auto L = static_cast<size_t>(config.num_hidden_layers);
  for (size_t i = 0; i < plans.size(); ++i) {
    if (i < L) {
      decoder_layers.push_back(DecoderLayer(plans[i], p));
      layers->push_back(decoder_layers.back());
    } else {
      mtp_layers.push_back(MtpLayer(plans[i], p));
      layers->push_back(mtp_layers.back());
    }
  }
  norm = register_module("norm", RmsNorm(config.hidden_size, config.rms_norm_eps, p));
}

CausalLMImpl::CausalLMImpl(ModelConfig config, const std::vector<LayerPlan>& plans, const ModelOptions& options)
    : config_(std::move(config)), options_(options) {
  RLFT_CHECK(static_cast<int64_t>(plans.size()) >= config_.num_hidden_layers, "model: {} layer plans for {} layers",
             plans.size(), config_.num_hidden_layers);
  const auto p = at::TensorOptions().dtype(options.dtype).device(options.device);
  model = register_module("model", Transformer(config_, plans, p));
  if (!config_.tie_word_embeddings)
    lm_head = register_module("lm_head", Linear(LinearOptions{config_.hidden_size, config_.vocab_size, false}, p));
  for (size_t i = 0; i < model->decoder_layers.size(); ++i)
    if (model->decoder_layers[i]->is_moe()) moe_layers_.push_back(static_cast<int64_t>(i));
}

at::Tensor CausalLMImpl::lm_head_weight() const {
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

at::Tensor CausalLMImpl::head(const at::Tensor& hidden) const {
  const auto logits = policy::linear(hidden, lm_head_weight());
  return logits.to(at::promote_types(logits.scalar_type(), at::kFloat));  // float32, or float64 for a float64 model
}

int64_t CausalLMImpl::logits_chunk_tokens() const {
  return chunk_tokens_for(options_.logits_chunk_mib, config_.vocab_size);
}

HeadLogprobs CausalLMImpl::token_logprobs(const at::Tensor& hidden, const at::Tensor& targets, double temperature,
                                          bool entropy) const {
  HeadLogprobOptions o;
  o.temperature = temperature;
  o.entropy = entropy;
  o.chunk_tokens = logits_chunk_tokens();
  return head_logprobs(hidden, lm_head_weight(), targets, o);
}

std::unique_ptr<KvCache> CausalLMImpl::make_cache(int64_t batch_size) const {
  return std::make_unique<KvCache>(config_.num_hidden_layers, batch_size, options_.device);
}

std::unique_ptr<KvCache> CausalLMImpl::make_draft_cache(int64_t batch_size) const {
  return std::make_unique<KvCache>(1, batch_size, options_.device);
}

std::pair<at::Tensor, at::Tensor> CausalLMImpl::mtp_draft(const at::Tensor& previous, const at::Tensor& next_tokens,
                                                          const at::Tensor& valid, KvCache& cache) {
  RLFT_CHECK(can_draft(), "mtp_draft: the model has no MTP module (num_nextn_predict_layers = 0)");
  RLFT_CHECK(cache.n_layers() == 1 && cache.batch_size() == next_tokens.size(0),
             "mtp_draft: the cache holds {} layers of {} rows, not 1 of {}", cache.n_layers(), cache.batch_size(),
             next_tokens.size(0));
  const int64_t T = next_tokens.size(1);
  const auto positions = running_positions(cache.next_positions().unsqueeze(1), valid);
  LayerInputs li;
  li.attention.positions = positions;
  li.attention.cache = &cache.layer(0);
  li.attention.next_positions = cache.next_positions();
  li.valid = valid.reshape({-1});
  auto& mtp = model->mtp_layers.front();
  const auto hidden = mtp->forward_mtp(previous, model->embed_tokens(next_tokens), li).hidden;
  cache.advance(valid);
  return {hidden, head(mtp->shared_head->norm(hidden.narrow(1, T - 1, 1))).select(1, 0)};
}

at::Tensor shifted_cross_entropy(const at::Tensor& logits, const at::Tensor& tokens, const at::Tensor& valid,
                                 int64_t shift) {
  const int64_t T = logits.size(1), V = logits.size(2);
  if (T <= shift) return logits.sum() * 0.0;
  const auto pred = logits.narrow(1, 0, T - shift).reshape({-1, V});
  const auto target = tokens.narrow(1, shift, T - shift).reshape({-1});
  const auto mask = valid.narrow(1, 0, T - shift).logical_and(valid.narrow(1, shift, T - shift)).reshape({-1});
  const auto dtype = at::promote_types(pred.scalar_type(), at::kFloat);
  const auto ce = at::cross_entropy_loss(pred.to(dtype), target, {}, at::Reduction::None);
  const auto m = mask.to(dtype);
  return (ce * m).sum() / m.sum().clamp_min(1.0);
}

at::Tensor shifted_cross_entropy(const CausalLMImpl& model, const at::Tensor& hidden, const at::Tensor& tokens,
                                 const at::Tensor& valid, int64_t shift) {
  const int64_t T = hidden.size(1), D = hidden.size(2);
  if (T <= shift) return hidden.sum() * 0.0;
  // Only the positions that count go through the head: [n] flat indices of [B, T - shift].
  const auto mask = valid.narrow(1, 0, T - shift).logical_and(valid.narrow(1, shift, T - shift)).reshape({-1});
  const auto rows = mask.nonzero().squeeze(1);
  const auto pred = hidden.narrow(1, 0, T - shift).reshape({-1, D}).index_select(0, rows);  // [n, D]
  const auto target = tokens.narrow(1, shift, T - shift).reshape({-1}).index_select(0, rows);
  const auto logp = model.token_logprobs(pred, target, 1.0, false).logp;  // [n]
  return -logp.sum() / std::max<double>(1.0, static_cast<double>(rows.size(0)));
}

ForwardOutput CausalLMImpl::forward(const ForwardInputs& in) {
  const auto device = options_.device;
  RLFT_CHECK_SHAPE(in.tokens, std::vector<int64_t>({-1, -1}), "forward: tokens [B, T]");
  const auto tokens = in.tokens.to(device, at::kLong);
  const int64_t B = tokens.size(0), T = tokens.size(1);
  RLFT_CHECK(T > 0, "forward: no tokens");
  at::Tensor valid = at::ones({B, T}, tokens.options().dtype(at::kBool));
  if (in.attention_mask.defined()) {
    RLFT_CHECK_SHAPE(in.attention_mask, tokens.sizes().vec(), "forward: attention_mask");
    valid = in.attention_mask.to(device).to(at::kBool);
  }
  if (in.cache) {
    RLFT_CHECK(in.cache->batch_size() == B, "forward: the KV cache holds {} rows, tokens have {}",
               in.cache->batch_size(), B);
    RLFT_CHECK(in.cache->n_layers() == config_.num_hidden_layers, "forward: the KV cache has {} layers, the model {}",
               in.cache->n_layers(), config_.num_hidden_layers);
    RLFT_CHECK(!in.mtp, "forward: MTP runs without a KV cache");
  }
  // Positions: given, or the running count of real tokens (continuing the cache's).
  at::Tensor positions, segments;
  if (in.positions.defined()) {
    RLFT_CHECK_SHAPE(in.positions, tokens.sizes().vec(), "forward: positions");
    positions = in.positions.to(device, at::kLong).masked_fill(valid.logical_not(), -1);
    if (!in.cache && T > 1) {
      const auto starts = positions.narrow(1, 1, T - 1) != positions.narrow(1, 0, T - 1) + 1;
      segments = at::cat({at::zeros({B, 1}, positions.options()), starts.to(at::kLong)}, 1).cumsum(1);
    }
  } else {
    const auto base =
        in.cache ? in.cache->next_positions().to(device).unsqueeze(1) : at::zeros({B, 1}, tokens.options());
    positions = running_positions(base, valid);
  }
  if (in.replay_routing)
    RLFT_CHECK(in.replay_routing->size() == moe_layers_.size(), "routing replay: {} tensors for {} MoE layers",
               in.replay_routing->size(), moe_layers_.size());

  const bool want_switch = in.balance && in.balance->switch_coef > 0.0;
  const bool want_seq = in.balance && in.balance->seq_alpha > 0.0;
  const auto valid_flat = valid.reshape({-1});
  ForwardOutput out;
  std::vector<SwitchTerms> switch_parts;
  std::vector<at::Tensor> seq_parts;

  auto collect = [&](int64_t layer, MoeOutput& m, bool trunk) {
    out.router.push_back({layer, m.load});
    if (!trunk) return;
    if (in.record_routing) out.routing.push_back(m.indices.view({B, T, -1}));
    if (m.switch_terms) switch_parts.push_back(*m.switch_terms);
    if (want_seq)
      seq_parts.push_back(sequence_balance_loss(m.scores.view({B, T, -1}), m.indices.view({B, T, -1}), valid));
  };

  auto x = model->embed_tokens(tokens);  // [B, T, D]
  size_t moe_index = 0;
  for (size_t i = 0; i < model->decoder_layers.size(); ++i) {
    LayerInputs li;
    li.attention.positions = positions;
    li.attention.segments = segments;
    if (in.cache) {
      li.attention.cache = &in.cache->layer(static_cast<int64_t>(i));
      li.attention.next_positions = in.cache->next_positions();
    }
    li.valid = valid_flat;
    li.switch_terms = want_switch;
    auto& layer = model->decoder_layers[i];
    if (layer->is_moe() && in.replay_routing) {
      const auto& r = (*in.replay_routing)[moe_index];
      RLFT_CHECK_SHAPE(r, std::vector<int64_t>({B, T, -1}), fmt::format("routing replay for layer {}", i));
      li.replay = r.reshape({B * T, -1});
    }
    auto lo = options_.activation_checkpointing && at::GradMode::is_enabled() && !in.cache
                  ? checkpointed_forward(*layer, x, li)
                  : layer->forward(x, li);
    x = lo.hidden;
    if (lo.moe) {
      collect(static_cast<int64_t>(i), *lo.moe, true);
      ++moe_index;
    }
  }
  if (in.cache) in.cache->advance(valid);

  at::Tensor h;  // [B, T, D]
  {
    PartTimer timer(&ForwardProfile::head);
    h = model->norm(x);
    if (in.logits == LogitsScope::kAll) out.logits = head(h);
    if (in.logits == LogitsScope::kLast) out.logits = head(h.narrow(1, T - 1, 1));
  }
  if (in.return_hidden) out.hidden = h;

  if (in.mtp && !model->mtp_layers.empty()) {
    std::vector<at::Tensor> losses;
    at::Tensor previous = h;
    for (size_t k = 1; k <= model->mtp_layers.size(); ++k) {
      const auto shift = static_cast<int64_t>(k);
      const auto next = shift < T
                            ? at::cat({tokens.narrow(1, shift, T - shift), at::zeros({B, shift}, tokens.options())}, 1)
                            : at::zeros_like(tokens);
      LayerInputs li;
      li.attention.positions = positions;
      li.attention.segments = segments;
      li.valid = valid_flat;
      auto& mtp = model->mtp_layers[k - 1];
      auto lo = mtp->forward_mtp(previous, model->embed_tokens(next), li);
      if (lo.moe) collect(config_.num_hidden_layers + shift - 1, *lo.moe, false);
      previous = lo.hidden;
      const auto hk = mtp->shared_head->norm(lo.hidden);  // [B, T, D]
      if (in.logits == LogitsScope::kAll) out.mtp_logits.push_back(head(hk));
      losses.push_back(shifted_cross_entropy(*this, hk, tokens, valid, shift + 1));
    }
    out.mtp_loss = at::stack(losses).mean();
  }

  if (in.balance) {
    auto aux = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(device));
    if (want_switch && !switch_parts.empty()) {
      out.switch_loss = switch_aux_loss(switch_parts);
      aux = aux + in.balance->switch_coef * out.switch_loss;
    }
    if (want_seq && !seq_parts.empty()) {
      out.seq_balance_loss = at::stack(seq_parts).mean();
      aux = aux + in.balance->seq_alpha * out.seq_balance_loss;
    }
    out.aux_loss = aux;
  }
  return out;
}

uint64_t name_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull ^ (seed * 0x9E3779B97F4A7C15ull);
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

void CausalLMImpl::init_weights(uint64_t seed) {
  at::NoGradGuard no_grad;
  const double std = config_.initializer_range;
  for (const auto& item : named_modules()) {
    const bool is_norm = dynamic_cast<const RmsNormImpl*>(item.value().get()) != nullptr;
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    for (const auto& param : item.value()->named_parameters(/*recurse=*/false)) {
      auto& t = param.value();
      if (is_norm) {
        t.fill_(1.0);
      } else if (param.key() == "bias") {
        t.zero_();
      } else {
        auto gen = at::make_generator<at::CPUGeneratorImpl>(name_seed(seed, prefix + param.key()));
        t.copy_(at::empty(t.sizes(), at::kFloat).normal_(0.0, std, gen));
      }
    }
    for (const auto& buf : item.value()->named_buffers(/*recurse=*/false)) buf.value().zero_();
  }
}

void CausalLMImpl::update_router_bias(const std::vector<RouterStats>& loads, double gamma) {
  for (const auto& s : loads) {
    const int64_t L = config_.num_hidden_layers;
    RLFT_CHECK(s.layer >= 0 && s.layer < L + static_cast<int64_t>(model->mtp_layers.size()),
               "router bias update: no layer {}", s.layer);
    DecoderLayerImpl* layer = s.layer < L ? model->decoder_layers[static_cast<size_t>(s.layer)].get()
                                          : model->mtp_layers[static_cast<size_t>(s.layer - L)].get();
    RLFT_CHECK(layer->is_moe() && layer->moe->gate->e_score_correction_bias.defined(),
               "router bias update: layer {} has no e_score_correction_bias", s.layer);
    update_router_bias_tensor(layer->moe->gate->e_score_correction_bias, s.load, gamma);
  }
}

bool CausalLMImpl::has_router_bias() const {
  for (int64_t i : moe_layers_)
    if (model->decoder_layers[static_cast<size_t>(i)]->moe->options().router_bias_balanced) return true;
  return false;
}

ParamCounts CausalLMImpl::param_counts() const {
  ParamCounts c;
  for (const auto& p : parameters()) c.total += p.numel();
  for (const auto& m : model->mtp_layers)
    for (const auto& p : m->parameters()) c.mtp += p.numel();
  c.embedding = model->embed_tokens->weight.numel();
  c.active = c.total - c.mtp;
  for (int64_t i : moe_layers_) {
    const auto& moe = model->decoder_layers[static_cast<size_t>(i)]->moe;
    const auto& ro = moe->options().router;
    int64_t per_expert = 0;
    for (const auto& p : moe->expert_list.front()->parameters()) per_expert += p.numel();
    c.active -= (ro.n_experts - ro.top_k) * per_expert;
  }
  return c;
}

CausalLM build_model(const ModelConfig& config, const ModelOptions& options, const ArchRegistry& registry) {
  validate_model_config(config, registry);
  const Architecture& arch = registry.get(config.architecture);
  const int64_t n = config.num_hidden_layers + (options.mtp ? config.num_nextn_predict_layers : 0);
  RLFT_CHECK(config.num_nextn_predict_layers == 0 || arch.supports_mtp,
             "{}: num_nextn_predict_layers = {}: this architecture has no MTP modules", arch.name,
             config.num_nextn_predict_layers);
  std::vector<LayerPlan> plans;
  for (int64_t i = 0; i < n; ++i) plans.push_back(arch.plan(config, i));
  return CausalLM(config, plans, options);
}

BalanceLossOptions BalanceLossOptions::from_config(const ConfigView& s) {
  BalanceLossOptions o;
  o.switch_coef = s.get<double>("switch_coef", o.switch_coef);
  o.seq_alpha = s.get<double>("seq_alpha", o.seq_alpha);
  return o;
}

void BalanceLossOptions::validate() const {
  RLFT_CHECK_OPTION(switch_coef >= 0, "switch_coef", switch_coef, "must be >= 0");
  RLFT_CHECK_OPTION(seq_alpha >= 0, "seq_alpha", seq_alpha, "must be >= 0");
}

}  // namespace rlft::policy
