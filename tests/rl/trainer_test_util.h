#pragma once
// A tiny GRPO/SFT job for the trainer tests: a DeepSeek-V3-style MoE (MLA, shared and routed
// experts, MTP) small enough to train a few steps in a second, on built-in arithmetic.

#include <fmt/format.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "data/store.h"
#include "rl/grpo_trainer.h"
#include "rl/job.h"
#include "rl/sft_trainer.h"
#include "tests/support/temp_dir.h"

namespace rlft::test {

inline std::string tiny_job_yaml(const std::string& dir, const std::string& name, const std::string& extra = "") {
  return fmt::format(R"(run:
  name: {name}
  seed: 3
  store: {dir}/rlft.db
  output_dir: {dir}/{name}
  threads: 1
  log_level: warn
model:
  architectures: [DeepseekV3ForCausalLM]
  vocab_size: 300
  hidden_size: 32
  intermediate_size: 48
  moe_intermediate_size: 16
  num_hidden_layers: 2
  num_attention_heads: 2
  num_key_value_heads: 2
  q_lora_rank: 16
  kv_lora_rank: 16
  qk_nope_head_dim: 8
  qk_rope_head_dim: 8
  v_head_dim: 8
  n_routed_experts: 4
  n_shared_experts: 1
  num_experts_per_tok: 2
  n_group: 2
  topk_group: 1
  scoring_func: sigmoid
  topk_method: noaux_tc
  norm_topk_prob: true
  first_k_dense_replace: 1
  num_nextn_predict_layers: 1
  max_position_embeddings: 64
  initializer_range: 0.05
tokenizer:
  vocab_size: 290
prompt:
  template: "{{prompt}}\n"
data:
  source: arithmetic
  eval_size: 8
  arithmetic:
    n_examples: 90
    max_digits: 1
    ops: ["+"]
    completion_template: "<answer>{{answer}}</answer>"
rewards:
  correct:
    type: math_answer
  fmt:
    type: format
    template: think_answer
    weight: 0.0
optim:
  lr: 1.0e-3
  schedule: cosine
  warmup_steps: 1
sft:
  steps: 4
  batch_size: 8
grpo:
  steps: 4
  prompts_per_step: 4
  group_size: 4
  max_new_tokens: 6
  mini_batches: 2
  micro_batch_rows: 3
checkpoint:
  every: 2
  keep: 3
eval:
  max_new_tokens: 6
{extra}
)",
                     fmt::arg("name", name), fmt::arg("dir", dir), fmt::arg("extra", extra));
}

/// The value of metric `name` at `step` of run `run` in the store at `store_path`; throws
/// rlft::Error when the store holds no such value (the test then fails, naming it).
inline double metric_at(const std::string& store_path, const std::string& run, const std::string& name, int64_t step) {
  auto store = data::Store::open(store_path, false);
  const auto r = store.find_run(run);
  if (!r) throw Error(fmt::format("no run {} in {}", run, store_path));
  for (const auto& p : store.metric_series(r->id, name))
    if (p.step == step) return p.value;
  throw Error(fmt::format("run {}: no metric {} at step {}", run, name, step));
}

/// Every metric of run `run` by (step, name), less those that measure time, throughput or
/// memory: what a resumed run must repeat exactly. Throws rlft::Error for an unknown run.
inline std::map<std::pair<int64_t, std::string>, double> comparable_metrics(const std::string& store_path,
                                                                            const std::string& run) {
  auto store = data::Store::open(store_path, false);
  const auto r = store.find_run(run);
  if (!r) throw Error(fmt::format("no run {} in {}", run, store_path));
  std::map<std::pair<int64_t, std::string>, double> out;
  for (const auto& name : store.metric_names(r->id)) {
    if (name.rfind("time/", 0) == 0 || name.rfind("memory/", 0) == 0 || name.find("per_s") != std::string::npos ||
        name == "eval/seconds")
      continue;
    for (const auto& p : store.metric_series(r->id, name)) out[{p.step, name}] = p.value;
  }
  return out;
}

/// Writes the job YAML into `tmp` and parses it with `overrides`.
inline rl::ParsedJob tiny_job(const TempDir& tmp, const std::string& name, rl::JobKind kind,
                              const std::vector<std::string>& overrides = {}, const std::string& extra = "") {
  const auto path = tmp.write(name + ".yaml", tiny_job_yaml(tmp.path(), name, extra));
  return rl::parse_job(ConfigView::load(path, overrides), kind);
}

/// A parsed tiny job opened as a run (Job), with the trainers' sections beside it.
struct TinyRun {
  rl::TrainerSections trainers;
  rl::Job job;
  TinyRun(rl::ParsedJob parsed, const std::string& kind_name, bool resume)
      : trainers(parsed.trainers), job(std::move(parsed.spec), kind_name, resume) {}
  rl::TrainResult grpo(int64_t stop_after = 0) { return rl::run_grpo(job, *trainers.grpo, stop_after); }
  rl::TrainResult sft(int64_t stop_after = 0) { return rl::run_sft(job, *trainers.sft, stop_after); }
};

}  // namespace rlft::test
