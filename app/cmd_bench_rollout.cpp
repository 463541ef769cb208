// `rlft bench rollout [--json] [--model DIR]`: prefill and decode tokens/s of rollout for the
// bench model (configs/model/bench-moe.yaml: Qwen2-MoE, d 512, 8 layers, 16 experts top-2 +
// shared, vocab 32k; random weights) or any model directory, at 1, 8 and 32 sequences
// sharing one prompt and 16 prompts × 8 samples, each next to a naive baseline measured in
// the same run (no KV cache: every step re-runs the whole sequence; no prefix sharing: the
// prompt is prefilled once per row), with the decode FLOP/s and the fp32 GEMM rate.
//
// Figures: prefill_tokens_per_s = prompt tokens served (rows × prompt length) per second of
// prefill, so prefix sharing shows as a higher rate; decode_tokens_per_s = new tokens per
// second of decode (forwards and sampling); decode_gflops = decode FLOPs (2 × active
// non-embedding parameters + attention over the cached context, per token) per second.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/torch.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "app/cli.h"
#include "core/gemm_rate.h"
#include "core/progress.h"
#include "core/threads.h"
#include "policy/arch/arch.h"
#include "policy/model_config.h"
#include "policy/model_io.h"
#include "rollout/generator.h"

namespace rlft::app {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchRolloutCli {
  std::string model;
  bool json = false;
  int threads = 0;
  int64_t prompt_tokens = 32, new_tokens = 32, naive_steps = 2;
  std::string dtype = "float32";
  std::vector<int64_t> sequences = {1, 8, 32, 128};  // the cases to run, by sequence count
  int64_t speculative = 0;                           // draft tokens of the speculative runs (0 = none)
  bool continuous = true;                            // time continuous batching against waves
};

// configs/model/bench-moe.yaml, as config.json keys.
nlohmann::json bench_model_json() {
  return {{"architectures", {"Qwen2MoeForCausalLM"}},
          {"vocab_size", 32000},
          {"hidden_size", 512},
          {"intermediate_size", 1024},
          {"num_hidden_layers", 8},
          {"num_attention_heads", 8},
          {"num_key_value_heads", 8},
          {"num_experts", 16},
          {"num_experts_per_tok", 2},
          {"moe_intermediate_size", 1024},
          {"shared_expert_intermediate_size", 1024},
          {"norm_topk_prob", true},
          {"decoder_sparse_step", 1},
          {"router_aux_loss_coef", 0.001},
          {"max_position_embeddings", 4096},
          {"rope_theta", 10000.0},
          {"rms_norm_eps", 1e-6},
          {"tie_word_embeddings", false},
          {"initializer_range", 0.02}};
}

// FLOPs of one decoded token at context length `context`.
double decode_flops_per_token(const policy::CausalLM& model, double context) {
  const auto c = model->param_counts();
  const auto& cfg = model->config();
  double matmul = static_cast<double>(c.active - (cfg.tie_word_embeddings ? 0 : c.embedding));
  const double head_dim =
      cfg.head_dim > 0 ? cfg.head_dim : static_cast<double>(cfg.hidden_size) / cfg.num_attention_heads;
  const double attention = 4.0 * cfg.num_hidden_layers * context * cfg.num_attention_heads * head_dim;
  return 2.0 * matmul + attention;
}

struct Rates {
  double prefill_tokens_per_s = 0, decode_tokens_per_s = 0, decode_gflops = 0;
  double acceptance = 0;     // speculative: drafts kept / drafted
  double seconds = 0;        // prefill + decode
  int64_t new_tokens = 0;    // completion tokens
  double rows_per_step = 0;  // decode tokens / decode steps
  // One decode step (a forward over every live row, then sampling), in ms, and its parts.
  double step_ms = 0, attention_ms = 0, ffn_ms = 0, head_ms = 0, sampling_ms = 0;
};

// rlft's path: Generator (KV cache, prompt prefilled once per group, finished rows dropped).
rollout::GenerateOptions bench_options(int64_t new_tokens, int64_t speculative = 0) {
  rollout::GenerateOptions g;
  g.max_new_tokens = new_tokens;
  g.use_model_eos = false;
  g.max_batch_rows = 1 << 20;
  g.speculative_tokens = speculative;
  return g;
}

Rates measure_rollout(rollout::Generator& gen, const std::vector<rollout::Request>& requests,
                      const rollout::GenerateOptions& g, double flops_per_token) {
  rollout::GenerateStats st;
  const auto groups = gen.generate(requests, rollout::SamplingOptions{}, g, &st);
  int64_t served = 0;
  for (const auto& r : requests) served += static_cast<int64_t>(r.prompt.size()) * r.n_samples;
  Rates out;
  out.prefill_tokens_per_s = served / std::max(st.prefill_seconds, 1e-9);
  out.decode_tokens_per_s = st.decode_tokens / std::max(st.decode_seconds, 1e-9);
  out.decode_gflops = out.decode_tokens_per_s * flops_per_token / 1e9;
  const double steps = static_cast<double>(std::max<int64_t>(st.decode_steps, 1));
  out.step_ms = 1e3 * st.decode_seconds / steps;
  out.attention_ms = 1e3 * st.decode_parts.attention / steps;
  out.ffn_ms = 1e3 * st.decode_parts.ffn / steps;
  out.head_ms = 1e3 * st.decode_parts.head / steps;
  out.sampling_ms = 1e3 * st.sampling_seconds / steps;
  out.acceptance = st.draft_acceptance();
  out.seconds = st.prefill_seconds + st.decode_seconds;
  for (const auto& group : groups)
    for (const auto& sample : group.samples) out.new_tokens += static_cast<int64_t>(sample.tokens.size());
  out.rows_per_step = static_cast<double>(st.decode_tokens) / steps;
  return out;
}

// The naive baseline: every row carries its own copy of the prompt, every step re-runs the
// whole sequence without a cache.
Rates measure_naive(policy::CausalLM& model, const std::vector<rollout::Request>& requests, int64_t steps,
                    double flops_per_token) {
  c10::InferenceMode guard;
  std::vector<at::Tensor> rows;
  for (const auto& r : requests)
    for (int64_t s = 0; s < r.n_samples; ++s) rows.push_back(at::tensor(r.prompt, at::kLong));
  auto tokens = at::stack(rows, 0);  // [R, P] (the bench's prompts share one length)
  const int64_t R = tokens.size(0), P = tokens.size(1);
  auto step = [&] {
    policy::ForwardInputs in;
    in.tokens = tokens;
    in.logits = policy::LogitsScope::kLast;
    const auto next = model->forward(in).logits.select(1, 0).argmax(1);  // [R]
    tokens = at::cat({tokens, next.unsqueeze(1)}, 1);
  };
  auto t0 = Clock::now();
  step();
  const double prefill = std::chrono::duration<double>(Clock::now() - t0).count();
  t0 = Clock::now();
  for (int64_t i = 0; i < steps; ++i) step();
  const double decode = std::chrono::duration<double>(Clock::now() - t0).count();
  Rates out;
  out.prefill_tokens_per_s = R * P / std::max(prefill, 1e-9);
  out.decode_tokens_per_s = R * steps / std::max(decode, 1e-9);
  out.decode_gflops = out.decode_tokens_per_s * flops_per_token / 1e9;  // useful FLOPs, as for rollout
  return out;
}

void run_bench(const BenchRolloutCli& o) {
  apply_thread_count(o.threads);
  RLFT_CHECK_AS(UsageError, o.prompt_tokens >= 1 && o.new_tokens >= 1 && o.naive_steps >= 1,
                "--prompt-tokens, --new-tokens and --naive-steps must be >= 1");
  RLFT_CHECK_AS(UsageError, o.speculative >= 0 && o.speculative <= 15, "--speculative {}: must be in 0..15",
                o.speculative);
  const auto registry = policy::builtin_architectures();
  policy::ModelOptions mo;
  mo.dtype = policy::parse_dtype(o.dtype);
  mo.mtp = o.speculative > 0;  // the MTP module drafts; otherwise it is not needed
  policy::CausalLM model{nullptr};
  std::string name;
  if (o.model.empty()) {
    model =
        policy::build_model(policy::read_model_config_json(bench_model_json(), "bench-moe", registry), mo, registry);
    model->init_weights(0);
    name = "bench-moe (random weights)";
  } else {
    model = policy::load_model(o.model, mo, registry);
    name = o.model;
  }
  model->eval();
  const auto& cfg = model->config();
  RLFT_CHECK_AS(UsageError, o.prompt_tokens + o.new_tokens < cfg.max_position_embeddings,
                "--prompt-tokens + --new-tokens = {}: must stay below the context ({})", o.prompt_tokens + o.new_tokens,
                cfg.max_position_embeddings);
  const GemmRate gemm = measure_gemm(1024, at::kFloat);
  const double flops = decode_flops_per_token(model, static_cast<double>(o.prompt_tokens) + o.new_tokens / 2.0);

  auto prompt = [&](uint64_t seed) {
    auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
    const auto t = at::randint(2, cfg.vocab_size, {o.prompt_tokens}, g, at::TensorOptions().dtype(at::kLong));
    return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + o.prompt_tokens);
  };
  struct Case {
    std::string name;
    std::vector<rollout::Request> requests;
  };
  auto wanted = [&](int64_t n) { return std::find(o.sequences.begin(), o.sequences.end(), n) != o.sequences.end(); };
  for (int64_t n : o.sequences)
    RLFT_CHECK_AS(UsageError, n == 1 || n == 8 || n == 32 || n == 128,
                  "--sequences {}: the cases are 1, 8 and 32 sequences on one prompt and 128 (16 prompts x 8)", n);
  std::vector<Case> cases;
  for (int64_t n : {1, 8, 32})
    if (wanted(n)) cases.push_back({fmt::format("shared_prompt_x{}", n), {{prompt(1), n, 0}}});
  Case groups{"16_prompts_x8", {}};
  for (uint64_t p = 0; p < 16; ++p) groups.requests.push_back({prompt(10 + p), 8, p});
  if (wanted(128)) cases.push_back(groups);

  rollout::Generator gen(model);
  measure_rollout(gen, {{prompt(0), 1, 0}}, bench_options(2), flops);  // warm-up
  nlohmann::json j;
  j["model"] = name;
  j["threads"] = at::get_num_threads();
  j["gemm_gflops"] = gemm.gflops;
  j["prompt_tokens"] = o.prompt_tokens;
  j["new_tokens"] = o.new_tokens;
  j["decode_flops_per_token"] = flops;
  j["cases"] = nlohmann::json::array();
  {
    Progress progress("rollout", static_cast<int64_t>(cases.size()));
    for (const auto& c : cases) {
      int64_t seqs = 0;
      for (const auto& r : c.requests) seqs += r.n_samples;
      const Rates fast = measure_rollout(gen, c.requests, bench_options(o.new_tokens), flops);
      const Rates naive = measure_naive(model, c.requests, o.naive_steps, flops);
      if (o.speculative > 0 && (seqs == 1 || seqs == 8)) {
        const Rates spec = measure_rollout(gen, c.requests, bench_options(o.new_tokens, o.speculative), flops);
        j["speculative"].push_back({{"name", c.name},
                                    {"sequences", seqs},
                                    {"draft_tokens", o.speculative},
                                    {"decode_tokens_per_s", fast.decode_tokens_per_s},
                                    {"speculative_decode_tokens_per_s", spec.decode_tokens_per_s},
                                    {"acceptance_rate", spec.acceptance},
                                    {"speedup", spec.decode_tokens_per_s / std::max(fast.decode_tokens_per_s, 1e-9)}});
      }
      j["cases"].push_back(
          {{"name", c.name},
           {"prompts", c.requests.size()},
           {"sequences", seqs},
           {"prefill_tokens_per_s", fast.prefill_tokens_per_s},
           {"decode_tokens_per_s", fast.decode_tokens_per_s},
           {"decode_gflops", fast.decode_gflops},
           {"decode_gemm_fraction", fast.decode_gflops / std::max(gemm.gflops, 1e-9)},
           {"naive_prefill_tokens_per_s", naive.prefill_tokens_per_s},
           {"naive_decode_tokens_per_s", naive.decode_tokens_per_s},
           {"naive_decode_gflops", naive.decode_gflops},
           {"decode_speedup", fast.decode_tokens_per_s / std::max(naive.decode_tokens_per_s, 1e-9)},
           {"decode_step_ms", fast.step_ms},
           {"decode_step_split_ms",
            {{"attention", fast.attention_ms},
             {"ffn", fast.ffn_ms},
             {"lm_head", fast.head_ms},
             {"sampling", fast.sampling_ms},
             {"other", fast.step_ms - fast.attention_ms - fast.ffn_ms - fast.head_ms - fast.sampling_ms}}}});
      progress.advance(1, c.name);
    }
  }
  if (o.continuous) {
    // Completions of varied length: ids divisible by 16 stop (about one token in 16 at random
    // weights), up to 2 × new_tokens; 32 prompts × 8 samples through a batch of 64 rows.
    std::vector<rollout::Request> requests;
    for (uint64_t p = 0; p < 32; ++p) requests.push_back({prompt(100 + p), 8, p});
    auto g = bench_options(2 * o.new_tokens);
    g.max_batch_rows = 64;
    for (int64_t id = 0; id < cfg.vocab_size; id += 16) g.stop_token_ids.push_back(id);
    Progress progress("continuous batching", 2);
    const Rates continuous = measure_rollout(gen, requests, g, flops);
    progress.advance(1, "continuous");
    g.continuous_batching = false;
    const Rates waves = measure_rollout(gen, requests, g, flops);
    progress.advance(1, "waves");
    auto entry = [](const Rates& r) {
      return nlohmann::json{{"seconds", r.seconds},
                            {"new_tokens", r.new_tokens},
                            {"tokens_per_s", static_cast<double>(r.new_tokens) / std::max(r.seconds, 1e-9)},
                            {"decode_tokens_per_s", r.decode_tokens_per_s},
                            {"rows_per_step", r.rows_per_step}};
    };
    j["continuous_batching"] = {
        {"prompts", 32},         {"samples", 8},
        {"max_batch_rows", 64},  {"continuous", entry(continuous)},
        {"waves", entry(waves)}, {"speedup", waves.seconds / std::max(continuous.seconds, 1e-9)}};
  }
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("model {} — {} threads, prompt {} tokens, {} new; fp32 GEMM {:.1f} GFLOP/s\n", name,
                           at::get_num_threads(), o.prompt_tokens, o.new_tokens, gemm.gflops);
  std::cout << fmt::format("{:<18} {:>5} {:>14} {:>12} {:>9} {:>7} | {:>14} {:>12} {:>8}\n", "case", "seqs",
                           "prefill tok/s", "decode tok/s", "GFLOP/s", "%GEMM", "naive prefill", "naive decode",
                           "speedup");
  for (const auto& c : j["cases"])
    std::cout << fmt::format("{:<18} {:>5} {:>14.0f} {:>12.1f} {:>9.2f} {:>6.1f}% | {:>14.0f} {:>12.1f} {:>7.1f}x\n",
                             c["name"].get<std::string>(), c["sequences"].get<int64_t>(),
                             c["prefill_tokens_per_s"].get<double>(), c["decode_tokens_per_s"].get<double>(),
                             c["decode_gflops"].get<double>(), 100.0 * c["decode_gemm_fraction"].get<double>(),
                             c["naive_prefill_tokens_per_s"].get<double>(),
                             c["naive_decode_tokens_per_s"].get<double>(), c["decode_speedup"].get<double>());
  std::cout << fmt::format("\none decode step, ms (attention and feed-forward with their norms; {} = MoE or MLP)\n",
                           "ffn");
  std::cout << fmt::format("{:<18} {:>8} {:>10} {:>8} {:>8} {:>9} {:>8}\n", "case", "step", "attention", "ffn",
                           "lm_head", "sampling", "other");
  for (const auto& c : j["cases"]) {
    const auto& p = c["decode_step_split_ms"];
    std::cout << fmt::format("{:<18} {:>8.2f} {:>10.2f} {:>8.2f} {:>8.2f} {:>9.2f} {:>8.2f}\n",
                             c["name"].get<std::string>(), c["decode_step_ms"].get<double>(),
                             p["attention"].get<double>(), p["ffn"].get<double>(), p["lm_head"].get<double>(),
                             p["sampling"].get<double>(), p["other"].get<double>());
  }
  if (j.contains("continuous_batching")) {
    const auto& c = j["continuous_batching"];
    std::cout << fmt::format(
        "\ncontinuous batching: 32 prompts x 8 samples, varied lengths (mean {:.1f} tokens), at most 64 rows\n",
        static_cast<double>(c["continuous"]["new_tokens"].get<int64_t>()) / 256.0);
    std::cout << fmt::format("{:<11} {:>9} {:>13} {:>13} {:>14}\n", "", "seconds", "tokens/s", "rows/step",
                             "decode tok/s");
    for (const char* k : {"continuous", "waves"})
      std::cout << fmt::format("{:<11} {:>9.2f} {:>13.1f} {:>13.1f} {:>14.1f}\n", k, c[k]["seconds"].get<double>(),
                               c[k]["tokens_per_s"].get<double>(), c[k]["rows_per_step"].get<double>(),
                               c[k]["decode_tokens_per_s"].get<double>());
    std::cout << fmt::format("speed-up {:.2f}x\n", c["speedup"].get<double>());
  }
  if (!j.contains("speculative")) return;
  std::cout << fmt::format("\nspeculative rollout, {} tokens drafted by the MTP module per step (temperature 1)\n",
                           o.speculative);
  std::cout << fmt::format("{:<18} {:>5} {:>12} {:>17} {:>11} {:>8}\n", "case", "seqs", "decode tok/s",
                           "speculative tok/s", "acceptance", "speedup");
  for (const auto& c : j["speculative"])
    std::cout << fmt::format("{:<18} {:>5} {:>12.1f} {:>17.1f} {:>10.1f}% {:>7.2f}x\n", c["name"].get<std::string>(),
                             c["sequences"].get<int64_t>(), c["decode_tokens_per_s"].get<double>(),
                             c["speculative_decode_tokens_per_s"].get<double>(),
                             100.0 * c["acceptance_rate"].get<double>(), c["speedup"].get<double>());
}

}  // namespace

void add_bench_rollout(CLI::App& bench) {
  auto o = std::make_shared<BenchRolloutCli>();
  CLI::App* cmd = bench.add_subcommand("rollout", "Rollout prefill/decode tokens/s against a naive baseline");
  cmd->add_option("--model", o->model, "model directory (default: the bench model, random weights)");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_option("--threads", o->threads, "intra-op threads (0 = every core)");
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "prompt length")->capture_default_str();
  cmd->add_option("--new-tokens", o->new_tokens, "new tokens per sequence")->capture_default_str();
  cmd->add_option("--naive-steps", o->naive_steps, "decode steps the naive baseline is timed over")
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "float32 | bfloat16 | float16")->capture_default_str();
  cmd->add_option("--sequences", o->sequences, "cases to run: 1, 8, 32 (one shared prompt), 128 (16 prompts x 8)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--continuous", o->continuous,
                  "time continuous batching against waves on completions of varied length (true | false)")
      ->capture_default_str();
  cmd->add_option("--speculative", o->speculative,
                  "also time speculative rollout at 1 and 8 sequences with this many MTP-drafted tokens per step "
                  "(a model with an MTP module, e.g. configs/model/bench-deepseek-v3.yaml)")
      ->capture_default_str();
  cmd->callback([o] { run_bench(*o); });
}

}  // namespace rlft::app
