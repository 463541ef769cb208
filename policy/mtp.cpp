#include "policy/mtp.h"

namespace rlft::policy {

MtpSharedHeadImpl::MtpSharedHeadImpl(int64_t hidden_size, double eps, const at::TensorOptions& p) {
  norm = register_module("norm", RmsNorm(hidden_size, eps, p));
}

MtpLayerImpl::MtpLayerImpl(const LayerPlan& plan, const at::TensorOptions& p) : DecoderLayerImpl(plan, p) {
  enorm = register_module("enorm", RmsNorm(plan.hidden_size, plan.rms_norm_eps, p));
  hnorm = register_module("hnorm", RmsNorm(plan.hidden_size, plan.rms_norm_eps, p));
  eh_proj = register_module("eh_proj", Linear(LinearOptions{2 * plan.hidden_size, plan.hidden_size, false}, p));
  shared_head = register_module("shared_head", MtpSharedHead(plan.hidden_size, plan.rms_norm_eps, p));
}

LayerOutput MtpLayerImpl::forward_mtp(const at::Tensor& previous, const at::Tensor& next_embeddings,
                                      const LayerInputs& in) {
  const auto first = (in.attention.positions == 0).unsqueeze(-1);  // [B, T, 1]
  const auto emb = next_embeddings.masked_fill(first, 0.0);
  const auto h = eh_proj(at::cat({enorm(emb), hnorm(previous)}, -1));  // [B, T, D]
  return forward(h, in);
}

}  // namespace rlft::policy
