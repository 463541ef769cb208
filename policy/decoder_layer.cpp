#include "policy/decoder_layer.h"

#include "policy/forward_profile.h"

namespace rlft::policy {

DecoderLayerImpl::DecoderLayerImpl(const LayerPlan& plan, const at::TensorOptions& p) : plan_(plan) {
  input_layernorm = register_module("input_layernorm", RmsNorm(plan.hidden_size, plan.rms_norm_eps, p));
  if (plan.attention == LayerPlan::Attention::kMla)
    mla = register_module("self_attn", Mla(plan.mla, p));
  else
    gqa = register_module("self_attn", Attention(plan.gqa, p));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RmsNorm(plan.hidden_size, plan.rms_norm_eps, p));
  if (plan.ffn == LayerPlan::FeedForward::kMoe)
    moe = register_module("mlp", Moe(plan.moe, p));
  else
    mlp = register_module("mlp", Mlp(plan.mlp, p));
}

LayerOutput DecoderLayerImpl::forward(const at::Tensor& x, const LayerInputs& in) {
  at::Tensor attended;
  {
    PartTimer timer(&ForwardProfile::attention);
    const auto normed = input_layernorm(x);
    attended = mla ? mla(normed, in.attention) : gqa(normed, in.attention);
  }
  auto h = x + attended;
  PartTimer timer(&ForwardProfile::ffn);
  const auto ffn_in = post_attention_layernorm(h);
  LayerOutput out;
  if (moe) {
    const int64_t B = x.size(0), T = x.size(1), D = x.size(2);
    MoeInputs mi;
    mi.valid = in.valid;
    mi.replay = in.replay;
    mi.switch_terms = in.switch_terms;
    auto m = moe(ffn_in.reshape({B * T, D}), mi);
    h = h + m.hidden.view({B, T, D});
    out.moe = std::move(m);
  } else {
    h = h + mlp(ffn_in);
  }
  out.hidden = h;
  return out;
}

}  // namespace rlft::policy
