#pragma once
// CausalLM: the policy model — embeddings, decoder layers, final norm, LM head, and MTP
// modules — built from an architecture's layer plans, with the Hugging Face module tree
// (named_parameters() are the checkpoint's names: model.embed_tokens.weight, model.layers.
// {i}.…, model.norm.weight, lm_head.weight).
//
// One forward serves rollout (batched, left-padded, KV cache, last-position logits,
// routing capture) and training (autograd, routing replay, balance losses, MTP loss).
//
// Legend: B rows, T tokens, D model width, V vocabulary, K experts per token, E experts,
// L decoder layers, M MoE layers of the trunk.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/decoder_layer.h"
#include "policy/head_logprobs.h"
#include "policy/kv_cache.h"
#include "policy/layers/linear.h"
#include "policy/model_config.h"
#include "policy/mtp.h"

namespace rlft {
class ConfigView;
}

namespace rlft::policy {

class ArchRegistry;
struct LoraState;

/// The seed of one tensor's generator in a seeded initialisation: (seed, tensor name) hashed.
uint64_t name_seed(uint64_t seed, const std::string& name);

/// Where the model lives and what it computes in.
struct ModelOptions {
  at::ScalarType dtype = at::kFloat;  ///< compute (and parameter) dtype: float32, bfloat16, float16
  at::Device device = at::kCPU;
  /// Build the MTP modules (num_nextn_predict_layers of them); off = the trunk only.
  bool mtp = true;
  /// token_logprobs and the MTP loss compute the LM head in chunks of about this many MiB
  /// of float32 logits (> 0; policy/head_logprobs.h).
  double logits_chunk_mib = 64.0;
  /// Training forwards recompute each decoder layer in backward instead of keeping its
  /// activations (policy/layer_checkpoint.h).
  bool activation_checkpointing = false;
  /// load_model on the CPU: weights stored in the compute dtype are views of the mapped
  /// checkpoint files, not copies (frozen bases under LoRA: shared through the page cache).
  /// Nothing may then write to them but a copy-on-write page goes to this process alone.
  bool share_weights = false;
};

enum class LogitsScope {
  kAll,   ///< [B, T, V]
  kLast,  ///< [B, 1, V]: the last position (real for every row under left padding)
  kNone,  ///< no LM head (hidden states and router statistics only)
};

/// Coefficients of the balance losses added to ForwardOutput::aux_loss.
struct BalanceLossOptions {
  double switch_coef = 0.0;  ///< HF Switch loss (Qwen router_aux_loss_coef), >= 0; 0 = off
  double seq_alpha = 0.0;    ///< DeepSeek-V3 sequence-wise balance loss α, >= 0; 0 = off
  /// Reads a trainer's `balance:` section (every key optional).
  static BalanceLossOptions from_config(const ConfigView& section);
  void validate() const;  ///< throws rlft::OptionError naming the field
};

struct ForwardInputs {
  at::Tensor tokens;          ///< [B, T] int64
  at::Tensor attention_mask;  ///< [B, T] bool or integer, 1 = real token; undefined = all real
  /// [B, T] int64. Undefined: the running count of real tokens per row (plus the cache's
  /// offset), -1 on padding. Given without a cache, rows may hold packed sequences: a
  /// position that does not follow its predecessor starts a new sequence.
  at::Tensor positions;
  KvCache* cache = nullptr;  ///< read and extended when set (inference only)
  /// Experts to reuse, one [B, T, K] int64 per trunk MoE layer (ForwardOutput::routing of
  /// an earlier forward, e.g. rollout's); null = route afresh.
  const std::vector<at::Tensor>* replay_routing = nullptr;
  bool record_routing = false;  ///< fill ForwardOutput::routing
  LogitsScope logits = LogitsScope::kAll;
  bool return_hidden = false;  ///< fill ForwardOutput::hidden
  /// Run the MTP modules (no cache): mtp_loss, computed through the LM head chunk by chunk;
  /// mtp_logits too when `logits` is kAll.
  bool mtp = false;
  std::optional<BalanceLossOptions> balance;  ///< compute aux_loss when set
};

/// Per MoE layer (trunk and MTP), in layer order.
struct RouterStats {
  int64_t layer = 0;  ///< decoder layer index (L + k - 1 for MTP module k)
  at::Tensor load;    ///< [E] int64 (token, slot) assignments of real tokens
};

struct ForwardOutput {
  at::Tensor logits;                   ///< [B, T, V] or [B, 1, V], float32
  at::Tensor hidden;                   ///< [B, T, D] after model.norm (return_hidden)
  std::vector<RouterStats> router;     ///< expert load per MoE layer
  std::vector<at::Tensor> routing;     ///< per trunk MoE layer [B, T, K] int64 (record_routing)
  at::Tensor aux_loss;                 ///< scalar fp32 = switch_coef·switch_loss + seq_alpha·seq_balance_loss
  at::Tensor switch_loss;              ///< scalar, unweighted (switch_coef > 0)
  at::Tensor seq_balance_loss;         ///< scalar, unweighted mean over MoE layers (seq_alpha > 0)
  std::vector<at::Tensor> mtp_logits;  ///< per depth k: [B, T, V] float32, position i predicts t_{i+k+1} (kAll)
  at::Tensor mtp_loss;                 ///< scalar: mean over depths of the mean cross-entropy
};

/// Parameter counts for `rlft model info`.
struct ParamCounts {
  int64_t total = 0;      ///< every parameter, MTP included, tied head counted once
  int64_t mtp = 0;        ///< MTP modules (without the shared embedding and head)
  int64_t embedding = 0;  ///< model.embed_tokens
  int64_t active = 0;     ///< per token in the trunk: total − mtp − the routed experts not chosen
};

class TransformerImpl : public torch::nn::Module {
 public:
  TransformerImpl(const ModelConfig& config, const std::vector<LayerPlan>& plans, const at::TensorOptions& p);
  Embedding embed_tokens{nullptr};           // [V, D]
  torch::nn::ModuleList layers{nullptr};     // L decoder layers, then the MTP modules
  RmsNorm norm{nullptr};                     // [D]
  std::vector<DecoderLayer> decoder_layers;  ///< the first L of `layers`
  std::vector<MtpLayer> mtp_layers;          ///< the MTP modules, depth order
};
TORCH_MODULE(Transformer);

class CausalLMImpl : public torch::nn::Module {
 public:
  /// `plans`: num_hidden_layers + num_nextn_predict_layers entries. Parameters are left
  /// uninitialised: call init_weights() or load a checkpoint.
  CausalLMImpl(ModelConfig config, const std::vector<LayerPlan>& plans, const ModelOptions& options);

  ForwardOutput forward(const ForwardInputs& in);

  /// Seeded initialisation as transformers' _init_weights: linear and embedding weights
  /// ~ N(0, initializer_range), biases 0, RMSNorm weights 1, router biases 0. Each tensor
  /// draws from its own generator seeded by (seed, name), so the result does not depend on
  /// device, dtype or construction order.
  void init_weights(uint64_t seed);

  /// A cache for `batch_size` rows on the model's device.
  std::unique_ptr<KvCache> make_cache(int64_t batch_size) const;

  /// Whether the model has an MTP module to draft with (mtp_draft).
  bool can_draft() const { return !model->mtp_layers.empty(); }
  /// A cache for mtp_draft: one layer, `batch_size` rows.
  std::unique_ptr<KvCache> make_draft_cache(int64_t batch_size) const;
  /// Speculative decoding's draft (inference): the first MTP module over `previous`
  /// [B, T, D] (the trunk's hidden after model.norm, or this function's own output) and
  /// `next_tokens` [B, T] (the token after each position), `valid` [B, T] bool, at positions
  /// continuing `cache`'s count, which it extends. Returns the module's output [B, T, D] and
  /// the logits of the last column [B, V] in float32, from the shared head.
  std::pair<at::Tensor, at::Tensor> mtp_draft(const at::Tensor& previous, const at::Tensor& next_tokens,
                                              const at::Tensor& valid, KvCache& cache);

  /// Aux-loss-free balancing: for each entry, b += γ·sign(mean(load) − load) on that
  /// layer's e_score_correction_bias. Layers without a router bias are an error.
  void update_router_bias(const std::vector<RouterStats>& loads, double gamma);
  /// True when the trunk's routers select with a bias that aux-loss-free balancing moves
  /// (update_router_bias; DeepSeek-V3 with topk_method noaux_tc), as the architecture's
  /// plans say. The trainer asks this, not the model's type.
  bool has_router_bias() const;

  const ModelConfig& config() const { return config_; }
  const ModelOptions& options() const { return options_; }
  /// The LM head weight [V, D] (model.embed_tokens.weight when tied).
  at::Tensor lm_head_weight() const;
  /// Log-probs (and entropies) of `targets` [N] from hidden states [N, D] after model.norm
  /// (ForwardOutput::hidden rows): the LM head fused with log_softmax(logits / temperature)
  /// and gather, chunk by chunk (policy/head_logprobs.h); no [N, V] tensor is kept.
  HeadLogprobs token_logprobs(const at::Tensor& hidden, const at::Tensor& targets, double temperature,
                              bool entropy) const;
  /// Tokens per chunk of token_logprobs (ModelOptions::logits_chunk_mib at this vocabulary).
  int64_t logits_chunk_tokens() const;
  /// Indices of the trunk's MoE layers, in order (ForwardOutput::routing follows it).
  const std::vector<int64_t>& moe_layers() const { return moe_layers_; }
  ParamCounts param_counts() const;

  Transformer model{nullptr};
  Linear lm_head{nullptr};  ///< null when tie_word_embeddings
  /// LoRA adapters attached (policy/lora.h); null without them.
  std::shared_ptr<LoraState> lora;

 private:
  at::Tensor head(const at::Tensor& hidden) const;  // [.., D] -> [.., V] float32
  ModelConfig config_;
  ModelOptions options_;
  std::vector<int64_t> moe_layers_;
};
TORCH_MODULE(CausalLM);

/// Builds the model `config.architecture` describes (parameters uninitialised).
CausalLM build_model(const ModelConfig& config, const ModelOptions& options, const ArchRegistry& registry);

/// Mean cross-entropy of logits [B, T, V] predicting tokens [B, T] shifted by `shift`
/// (position i predicts tokens[i + shift]) over positions where both ends are valid.
at::Tensor shifted_cross_entropy(const at::Tensor& logits, const at::Tensor& tokens, const at::Tensor& valid,
                                 int64_t shift);

/// The same mean from hidden states [B, T, D] after the final norm, through the model's LM
/// head chunk by chunk (CausalLMImpl::token_logprobs): no [B, T, V] logits.
at::Tensor shifted_cross_entropy(const CausalLMImpl& model, const at::Tensor& hidden, const at::Tensor& tokens,
                                 const at::Tensor& valid, int64_t shift);

}  // namespace rlft::policy
