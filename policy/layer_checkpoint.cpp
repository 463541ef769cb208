#include "policy/layer_checkpoint.h"

#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include "core/error.h"

namespace rlft::policy {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The autocast state of the first forward, restored around the recomputation (backward runs
// outside the caller's autocast scope).
struct AutocastState {
  bool cpu = false, gpu = false;
  at::ScalarType cpu_dtype = at::kBFloat16, gpu_dtype = at::kHalf;

  static AutocastState current() {
    return {at::autocast::is_cpu_enabled(), at::autocast::is_enabled(), at::autocast::get_autocast_cpu_dtype(),
            at::autocast::get_autocast_gpu_dtype()};
  }
  void apply() const {
    at::autocast::set_cpu_enabled(cpu);
    at::autocast::set_enabled(gpu);
    at::autocast::set_autocast_cpu_dtype(cpu_dtype);
    at::autocast::set_autocast_gpu_dtype(gpu_dtype);
  }
};

class ScopedAutocast {
 public:
  explicit ScopedAutocast(const AutocastState& s) : previous_(AutocastState::current()) { s.apply(); }
  ~ScopedAutocast() {
    previous_.apply();
    at::autocast::clear_cache();
  }
  ScopedAutocast(const ScopedAutocast&) = delete;
  ScopedAutocast& operator=(const ScopedAutocast&) = delete;

 private:
  AutocastState previous_;
};

// What backward needs besides the saved input: the layer, its inputs, the autocast state.
struct Recompute : torch::CustomClassHolder {
  DecoderLayerImpl* layer = nullptr;
  LayerInputs in;
  AutocastState autocast;
};

// The differentiable tensors of a layer's output, in a fixed order: hidden, then (MoE) the
// router scores and the Switch mean probabilities where present.
variable_list differentiable(const LayerOutput& out) {
  variable_list v{out.hidden};
  if (out.moe) {
    v.push_back(out.moe->scores);
    if (out.moe->switch_terms) v.push_back(out.moe->switch_terms->p);
  }
  return v;
}

class LayerCheckpoint : public torch::autograd::Function<LayerCheckpoint> {
 public:
  // `first` receives the forward's full output (its non-differentiable parts are used as they are).
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, c10::intrusive_ptr<Recompute> state,
                               LayerOutput* first) {
    ctx->save_for_backward({x});
    *first = state->layer->forward(x, state->in);  // grad mode is off here: nothing is kept
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    return differentiable(*first);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto state = c10::static_intrusive_pointer_cast<Recompute>(ctx->saved_data["state"].toCapsule());
    const auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    LayerOutput again;
    {
      at::AutoGradMode grad_mode(true);
      ScopedAutocast autocast(state->autocast);
      again = state->layer->forward(x, state->in);
    }
    const auto outs = differentiable(again);
    RLFT_CHECK(outs.size() == grads.size(), "activation checkpointing: the recomputed layer has {} outputs, not {}",
               outs.size(), grads.size());
    variable_list ys, gs;
    for (size_t i = 0; i < outs.size(); ++i)
      if (grads[i].defined() && outs[i].requires_grad()) {
        ys.push_back(outs[i]);
        gs.push_back(grads[i]);
      }
    if (!ys.empty()) torch::autograd::backward(ys, gs);
    return {x.grad(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

LayerOutput checkpointed_forward(DecoderLayerImpl& layer, const at::Tensor& x, const LayerInputs& in) {
  RLFT_CHECK(in.attention.cache == nullptr,
             "activation checkpointing: a forward with a KV cache is not a training one");
  auto state = c10::make_intrusive<Recompute>();
  state->layer = &layer;
  state->in = in;
  state->autocast = AutocastState::current();
  // A leaf that requires grad, when x does not (frozen embeddings): the layer's own weights
  // get their gradients only through a Function that is part of the graph.
  const auto input = x.requires_grad() ? x : x.detach().requires_grad_(true);
  LayerOutput out;
  const auto v = LayerCheckpoint::apply(input, state, &out);
  out.hidden = v[0];
  if (out.moe) {
    out.moe->scores = v[1];
    if (out.moe->switch_terms) out.moe->switch_terms->p = v[2];
  }
  return out;
}

}  // namespace rlft::policy
