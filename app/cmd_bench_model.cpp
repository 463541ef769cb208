// `rlft bench model`: forward and forward+backward tokens/s of a MoE policy at the bench size
// (d_model 512, 8 layers, 16 experts top-2 plus a shared expert, vocabulary 32k, 2k tokens per
// batch; configs/model/bench-moe.yaml), the MoE layer alone, and the fp32 GEMM rate measured
// in the same run. Achieved FLOP/s ÷ GEMM rate says how close the MoE compute comes to the
// machine's matrix-multiply speed (goal: >= 50% for the MoE layer).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "app/cli.h"
#include "core/blas.h"
#include "core/config.h"
#include "core/gemm_rate.h"
#include "core/threads.h"
#include "policy/arch/arch.h"
#include "policy/causal_lm.h"
#include "policy/model_io.h"

namespace rlft::app {
namespace {

// configs/model/bench-moe.yaml, built in so the benchmark runs without the source tree.
const char* kBenchConfig = R"(model:
  architectures: [Qwen2MoeForCausalLM]
  vocab_size: 32000
  hidden_size: 512
  intermediate_size: 1024
  num_hidden_layers: 8
  num_attention_heads: 8
  num_key_value_heads: 8
  qkv_bias: true
  num_experts: 16
  num_experts_per_tok: 2
  moe_intermediate_size: 1024
  shared_expert_intermediate_size: 1024
  norm_topk_prob: true
  decoder_sparse_step: 1
  router_aux_loss_coef: 0.001
  max_position_embeddings: 4096
  rope_theta: 10000.0
  rms_norm_eps: 1.0e-6
  tie_word_embeddings: false
  initializer_range: 0.02
)";

struct BenchOptions {
  std::string config;  // "" = built in
  int64_t batch = 4;
  int64_t seq = 512;
  int repeats = 3;
  int threads = 0;
  std::string dtype = "float32";
  std::string device = "cpu";
  bool json = false;
};

using Clock = std::chrono::steady_clock;

void sync(const at::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// Best wall time of `repeats` runs of f (after one warm-up run).
template <typename F>
double best_seconds(int repeats, const at::Device& device, F&& f) {
  f();
  sync(device);
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = Clock::now();
    f();
    sync(device);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

// Forward FLOPs of the model per token (matrix multiplies only), at average context `ctx`.
struct Flops {
  double attention = 0, moe = 0, dense = 0, head = 0;
  double total() const { return attention + moe + dense + head; }
};

Flops model_flops(const policy::ModelConfig& c, double ctx) {
  Flops f;
  const double D = double(c.hidden_size), H = double(c.num_attention_heads), Hkv = double(c.num_key_value_heads);
  const double d = double(c.head_dim);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    f.attention += 2 * D * (H * d + 2 * Hkv * d) + 2 * H * d * D + 2 * 2 * ctx * H * d;
    if (policy::is_moe_layer(c, i)) {
      const double K = double(c.moe.num_experts_per_tok), I = double(c.moe.moe_intermediate_size);
      const double S = double(c.moe.shared_expert_intermediate_size);
      f.moe += 2 * D * double(c.moe.n_routed_experts) + K * 3 * 2 * D * I + 3 * 2 * D * S + 2 * D;
    } else {
      f.dense += 3 * 2 * D * double(c.intermediate_size);
    }
  }
  f.head = 2 * D * double(c.vocab_size);
  return f;
}

void run_bench(const BenchOptions& o) {
  apply_thread_count(o.threads);
  const at::Device device(o.device);
  const auto registry = policy::builtin_architectures();
  const ConfigView view =
      o.config.empty() ? ConfigView::parse(kBenchConfig, "bench-moe.yaml") : ConfigView::load(o.config);
  const policy::ModelConfig config = policy::read_model_config_yaml(view.section("model"), registry);
  policy::ModelOptions mo;
  mo.dtype = policy::parse_dtype(o.dtype);
  mo.device = device;
  mo.mtp = false;
  auto model = policy::build_model(config, mo, registry);
  model->init_weights(1);
  const int64_t n_tokens = o.batch * o.seq;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
  const auto tokens =
      at::randint(0, config.vocab_size, {o.batch, o.seq}, gen, at::TensorOptions().dtype(at::kLong)).to(device);

  const GemmRate gemm = measure_gemm(1024, mo.dtype == at::kFloat ? at::kFloat : mo.dtype, device);
  const double gemm_flops = gemm.gflops * 1e9;

  // Whole model.
  policy::ForwardInputs in;
  in.tokens = tokens;
  const double fwd_s = best_seconds(o.repeats, device, [&] {
    at::NoGradGuard no_grad;
    model->forward(in);
  });
  const double train_s = best_seconds(o.repeats, device, [&] {
    model->zero_grad();
    const auto out = model->forward(in);
    policy::shifted_cross_entropy(out.logits, tokens, at::ones_like(tokens, at::kBool), 1).backward();
  });
  const Flops per_token = model_flops(config, double(o.seq + 1) / 2.0);
  const double fwd_flops = per_token.total() * double(n_tokens);

  // The MoE layer alone, on post-norm-like activations.
  policy::Moe moe = model->model->decoder_layers.at(static_cast<size_t>(model->moe_layers().at(0)))->moe;
  const auto x = at::randn({n_tokens, config.hidden_size}, gen).to(device, mo.dtype);
  const double moe_fwd_s = best_seconds(o.repeats, device, [&] {
    at::NoGradGuard no_grad;
    moe->forward(x, {});
  });
  const auto xg = x.detach().requires_grad_(true);
  const double moe_train_s = best_seconds(o.repeats, device, [&] {
    moe->zero_grad();
    moe->forward(xg, {}).hidden.sum().backward();
  });
  const double moe_layer_flops = per_token.moe / double(model->moe_layers().size()) * double(n_tokens);

  const double fwd_rate = fwd_flops / fwd_s, train_rate = 3 * fwd_flops / train_s;
  const double moe_rate = moe_layer_flops / moe_fwd_s, moe_train_rate = 3 * moe_layer_flops / moe_train_s;
  const blas::Info b = blas::info();
  nlohmann::json j;
  j["model"] = {{"architecture", config.architecture},
                {"hidden_size", config.hidden_size},
                {"layers", config.num_hidden_layers},
                {"experts", config.moe.n_routed_experts},
                {"experts_per_token", config.moe.num_experts_per_tok},
                {"vocab_size", config.vocab_size},
                {"params", model->param_counts().total},
                {"params_active", model->param_counts().active}};
  j["batch"] = o.batch;
  j["seq"] = o.seq;
  j["tokens"] = n_tokens;
  j["dtype"] = o.dtype;
  j["device"] = o.device;
  j["threads"] = at::get_num_threads();
  j["blas"] = b.vendor + (b.core.empty() ? "" : " " + b.core);
  j["gemm_n"] = gemm.n;
  j["gemm_gflops"] = gemm.gflops;
  j["forward"] = {{"seconds", fwd_s},
                  {"tokens_per_s", double(n_tokens) / fwd_s},
                  {"gflops", fwd_rate / 1e9},
                  {"of_gemm", fwd_rate / gemm_flops}};
  j["forward_backward"] = {{"seconds", train_s},
                           {"tokens_per_s", double(n_tokens) / train_s},
                           {"gflops", train_rate / 1e9},
                           {"of_gemm", train_rate / gemm_flops}};
  j["moe_layer_forward"] = {{"seconds", moe_fwd_s}, {"gflops", moe_rate / 1e9}, {"of_gemm", moe_rate / gemm_flops}};
  j["moe_layer_forward_backward"] = {
      {"seconds", moe_train_s}, {"gflops", moe_train_rate / 1e9}, {"of_gemm", moe_train_rate / gemm_flops}};
  j["flops_per_token"] = {{"attention", per_token.attention},
                          {"moe", per_token.moe},
                          {"dense", per_token.dense},
                          {"lm_head", per_token.head}};
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format(
      "model {} — d_model {}, {} layers, {} experts top-{} + shared, vocab {}, {} parameters ({} active)\n",
      config.architecture, config.hidden_size, config.num_hidden_layers, config.moe.n_routed_experts,
      config.moe.num_experts_per_tok, config.vocab_size, model->param_counts().total, model->param_counts().active);
  std::cout << fmt::format("batch {} x {} = {} tokens, {}, {} threads, {} on {}\n", o.batch, o.seq, n_tokens, o.dtype,
                           at::get_num_threads(), j["blas"].get<std::string>(), o.device);
  std::cout << fmt::format("GEMM rate ({}, n={}): {:.1f} GFLOP/s\n\n", o.dtype, gemm.n, gemm.gflops);
  std::cout << fmt::format("{:<26} {:>10} {:>12} {:>10} {:>9}\n", "", "seconds", "tokens/s", "GFLOP/s", "of GEMM");
  auto row = [&](const char* name, double s, double rate, bool tokens) {
    std::cout << fmt::format("{:<26} {:>10.3f} {:>12} {:>10.1f} {:>8.0f}%\n", name, s,
                             tokens ? fmt::format("{:.0f}", double(n_tokens) / s) : std::string("-"), rate / 1e9,
                             100.0 * rate / gemm_flops);
  };
  row("model forward", fwd_s, fwd_rate, true);
  row("model forward+backward", train_s, train_rate, true);
  row("MoE layer forward", moe_fwd_s, moe_rate, false);
  row("MoE layer forward+backward", moe_train_s, moe_train_rate, false);
}

}  // namespace

void add_bench_model(CLI::App& bench) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = bench.add_subcommand("model", "MoE policy forward and forward+backward tokens/s vs the GEMM rate");
  cmd->add_option("--config", o->config, "YAML with a model: section (default: the built-in bench model)");
  cmd->add_option("--batch", o->batch, "rows per batch")->capture_default_str();
  cmd->add_option("--seq", o->seq, "tokens per row")->capture_default_str();
  cmd->add_option("--repeats", o->repeats, "timed runs (best is reported)")->capture_default_str();
  cmd->add_option("--threads", o->threads, "intra-op threads (0 = every core)");
  cmd->add_option("--dtype", o->dtype, "float32 | bfloat16 | float16")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu | cuda | cuda:N")->capture_default_str();
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] { run_bench(*o); });
}

}  // namespace rlft::app
