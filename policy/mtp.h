#pragma once
// Multi-token prediction module k (DeepSeek-V3 §2.2, depth D >= 1), stored as decoder layer
// model.layers.{L + k - 1} with the Hugging Face / vLLM names: enorm, hnorm, eh_proj, a full
// decoder block (self_attn, mlp, the two layer norms), shared_head.norm. Its embedding
// (model.layers.{L+k-1}.embed_tokens) and output head (shared_head.head) are the trunk's
// (shared, [V3] §2.2); checkpoints store copies, which model_io writes and skips on load.
//
//   h'_i = eh_proj([enorm(Emb(t_{i+k})) ; hnorm(h^{k-1}_i)])   (embedding first, as the
//          released weights and vLLM's DeepSeekMultiTokenPredictorLayer; embedding zeroed
//          at position 0 as vLLM does)
//   h^k  = block(h')                 logits^k_i = head(shared_head.norm(h^k_i)) ~ t_{i+k+1}
//
// Legend: B rows, T tokens, D model width.

#include "policy/decoder_layer.h"

namespace rlft::policy {

class MtpSharedHeadImpl : public torch::nn::Module {
 public:
  MtpSharedHeadImpl(int64_t hidden_size, double eps, const at::TensorOptions& param_options);
  RmsNorm norm{nullptr};  // [D]
};
TORCH_MODULE(MtpSharedHead);

class MtpLayerImpl : public DecoderLayerImpl {
 public:
  MtpLayerImpl(const LayerPlan& plan, const at::TensorOptions& param_options);
  /// previous [B, T, D] (trunk output after model.norm for k = 1, else module k-1's
  /// output), next_embeddings [B, T, D] = Emb(t_{i+k}) (zero past the end) -> h^k [B, T, D].
  LayerOutput forward_mtp(const at::Tensor& previous, const at::Tensor& next_embeddings, const LayerInputs& in);

  RmsNorm enorm{nullptr};   // [D]
  RmsNorm hnorm{nullptr};   // [D]
  Linear eh_proj{nullptr};  // [D, 2D]
  MtpSharedHead shared_head{nullptr};
};
TORCH_MODULE(MtpLayer);

}  // namespace rlft::policy
