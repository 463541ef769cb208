// Every validated option of a job's YAML: a bad value, in a file and through --set, fails
// with an error that names that option's own dotted key and position (the convention of
// core/config.h: validate() names the field, read_options locates it).
#include <fmt/format.h>

#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "rl/job.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

namespace rlft::options_test {

/// One option constraint: `key` (dotted) set to `value` must fail with `constraint`.
struct Row {
  const char* key;
  const char* value;
  const char* constraint;
  std::vector<std::string> also = {};  ///< --set overrides the case needs besides (a reward's type …)
};

/// `key: value` nested as YAML maps, one level per dotted part; `line` and `column` receive
/// the position of the value (1-based).
std::string nested_yaml(const std::string& key, const std::string& value, int& line, int& column) {
  std::string yaml;
  std::string rest = key;
  int depth = 0;
  for (auto dot = rest.find('.'); dot != std::string::npos; dot = rest.find('.')) {
    yaml += fmt::format("{:{}}{}:\n", "", 2 * depth, rest.substr(0, dot));
    rest = rest.substr(dot + 1);
    ++depth;
  }
  yaml += fmt::format("{:{}}{}: {}\n", "", 2 * depth, rest, value);
  line = depth + 1;
  column = 2 * depth + static_cast<int>(rest.size()) + 3;
  return yaml;
}

/// The ConfigError that parsing the whole job of `view` throws ("" when none).
std::string job_error(const ConfigView& view) {
  try {
    rl::parse_job(view, rl::JobKind::kAny);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

/// The same for YAML text, named job.yaml in errors.
std::string job_error(const std::string& yaml, const std::vector<std::string>& overrides) {
  return job_error(ConfigView::parse(yaml, "job.yaml", overrides));
}

const Row kRows[] = {
    // run:
    {"run.name", "\"a b\"", "must use only letters, digits, '_', '-' and '.'"},
    {"run.seed", "-1", "must be >= 0"},
    {"run.store", "\"\"", "must be a file path"},
    {"run.threads", "2000", "must be in [0, 1024] (0 = every core)"},
    {"run.device", "tpu", "must be cpu, cuda, cuda:N or auto"},
    {"run.log_level", "loud", "must be debug, info, warn or error"},
    // tokenizer:
    {"tokenizer.vocab_size", "100", "must be >= 257 (256 byte symbols and a special token)"},
    {"tokenizer.eos_token", "\"\"", "must name a token"},
    // precision:
    {"precision.compute", "fp8", "expected fp32, bf16 or fp16"},
    {"precision.loss_scaling", "sometimes", "expected auto, on or off"},
    {"precision.init_scale", "0", "must be > 0"},
    {"precision.growth_factor", "1", "must be > 1"},
    {"precision.backoff_factor", "1", "must be in (0, 1)"},
    {"precision.growth_interval", "0", "must be >= 1"},
    {"precision.max_consecutive_skips", "0", "must be >= 1"},
    // optim:
    {"optim.beta1", "1", "must be in [0, 1)"},
    {"optim.beta2", "-0.1", "must be in [0, 1)"},
    {"optim.eps", "0", "must be > 0"},
    {"optim.weight_decay", "-1", "must be >= 0"},
    {"optim.max_grad_norm", "-1", "must be >= 0 (0 = no clipping)"},
    {"optim.lr", "0", "must be > 0"},
    {"optim.schedule", "linear", "known schedules are constant, cosine"},
    {"optim.warmup_steps", "-1", "must be >= 0"},
    {"optim.min_lr_ratio", "2", "must be in [0, 1]"},
    // distributed:
    {"distributed.backend", "mpi", "must be auto, gloo or nccl"},
    {"distributed.timeout_s", "0", "must be > 0 (seconds a collective may wait for the other ranks)"},
    {"distributed.bucket_mb", "0", "must be > 0"},
    // checkpoint:
    {"checkpoint.every", "-1", "must be >= 0 (0 = only at the end)"},
    {"checkpoint.keep", "0", "must be >= 1"},
    // eval:
    // memory:
    {"memory.logits_chunk_mb", "0", "must be > 0"},
    {"memory.logits_chunk_mb", "-2", "must be > 0"},
    {"eval.every", "-1", "must be >= 0"},
    {"eval.size", "-1", "must be >= 0 (0 = the whole eval split)"},
    {"eval.samples", "0", "must be >= 1"},
    {"eval.samples", "2", "more than one sample per prompt needs temperature > 0"},
    {"eval.temperature", "-1", "must be >= 0 (0 = greedy)"},
    {"eval.max_new_tokens", "-1", "must be >= 0"},
    {"eval.batch_rows", "0", "must be >= 1"},
    // grpo:
    {"grpo.steps", "0", "must be >= 1"},
    {"grpo.prompts_per_step", "0", "must be >= 1"},
    {"grpo.group_size", "1", "must be >= 2 (advantages are relative to the group)"},
    {"grpo.max_new_tokens", "0", "must be >= 1"},
    {"grpo.epochs", "0", "must be >= 1"},
    {"grpo.mini_batches", "0", "must be >= 1"},
    {"grpo.mini_batches", "3", "must divide prompts_per_step (groups stay whole)"},
    {"grpo.micro_batch_rows", "-1", "must be >= 0"},
    {"grpo.micro_batch_tokens", "-1", "must be >= 0 (0 = no limit)"},
    {"grpo.micro_batch_tokens", "5", "must hold one sequence: more than max_new_tokens (64) plus the prompt"},
    {"grpo.max_resample_rounds", "-1", "must be >= 0"},
    {"grpo.router_bias_gamma", "-1", "must be >= 0"},
    {"grpo.log_rollouts", "-1", "must be >= 0"},
    // grpo.sampling: the sampling limits (rollout/sampling.h), then GRPO's own rule
    {"grpo.sampling.temperature", "-1", "must be >= 0 (0 = greedy)"},
    {"grpo.sampling.temperature", "0", "GRPO samples: must be > 0"},
    {"grpo.sampling.top_k", "-1", "must be >= 0 (0 = off)"},
    {"grpo.sampling.top_p", "0", "must be in (0, 1] (1 = off)"},
    {"grpo.sampling.min_p", "1", "must be in [0, 1) (0 = off)"},
    {"grpo.sampling.repetition_penalty", "0", "must be > 0 (1 = off)"},
    {"grpo.sampling.presence_penalty", ".inf", "must be finite (0 = off)"},
    // grpo.advantage:
    {"grpo.advantage.estimator", "ppo", "known estimators are dr_grpo, grpo, reinforce_pp, rloo"},
    {"grpo.advantage.scale", "global",
     "unknown advantage scale 'global': known scales are batch, group, none, whiten, whiten_tokens"},
    {"grpo.advantage.eps", "0", "must be > 0"},
    // grpo.loss:
    {"grpo.loss.clip_low", "1", "must be in (0, 1)"},
    {"grpo.loss.clip_high", "0", "must be > 0"},
    {"grpo.loss.dual_clip", "0.5", "must be > 1"},
    {"grpo.loss.ratio_level", "word", "unknown ratio level 'word': known levels are sequence, token"},
    {"grpo.loss.aggregation", "sum",
     "unknown loss aggregation 'sum': known aggregations are seq_mean_token_mean, seq_mean_token_sum_norm, "
     "token_mean"},
    {"grpo.loss.norm_tokens", "0", "must be > 0"},
    {"grpo.loss.kl_beta", "-1", "must be >= 0"},
    {"grpo.loss.kl_estimator", "k4", "unknown KL estimator 'k4': known estimators are k1, k2, k3"},
    {"grpo.loss.entropy_coef", "-1", "must be >= 0"},
    // grpo.balance:
    {"grpo.balance.switch_coef", "-1", "must be >= 0"},
    {"grpo.balance.seq_alpha", "-1", "must be >= 0"},
    // sft:
    {"sft.steps", "-1", "must be >= 0 (0 = epochs)"},
    {"sft.epochs", "0", "must be > 0"},
    {"sft.batch_size", "0", "must be >= 1"},
    {"sft.mtp_weight", "-1", "must be >= 0"},
    {"sft.router_bias_gamma", "-1", "must be >= 0"},
    {"sft.log_every", "0", "must be >= 1"},
    {"sft.balance.switch_coef", "-1", "must be >= 0"},
    {"sft.balance.seq_alpha", "-1", "must be >= 0"},
    // rm:
    {"rm.pairs", "\"\"", "\"store\" or a JSONL file"},
    {"rm.steps", "0", "must be >= 1"},
    {"rm.batch_size", "0", "must be >= 1"},
    {"rm.eval_fraction", "1", "must be in [0, 1)"},
    {"rm.eval_every", "-1", "must be >= 0 (0 = at the end only)"},
    {"rm.center_coef", "-1", "must be >= 0"},
    {"rm.max_length", "-1", "must be >= 0 (0 = no limit)"},
    {"rm.log_every", "0", "must be >= 1"},
    // data:, rewards:, prompt: (their modules' options, read the same way)
    {"data.eval_fraction", "1.5", "must be in [0, 1)", {"data.source=arithmetic"}},
    {"data.arithmetic.min_digits", "0", "must be in [1, 9]", {"data.source=arithmetic"}},
    {"rewards.r.tolerance", "2", "must be in [0, 1)", {"rewards.r.type=math_answer"}},
    {"prompt.chat.prefix", "\"{x}\"", "chat format: prefix takes no placeholders (write {{ for a brace)"},
};

/// The value as the error quotes it: YAML's own text, quotes removed.
std::string quoted_back(const std::string& value) {
  if (value.size() >= 2 && value.front() == '"') return value.substr(1, value.size() - 2);
  return value;
}

}  // namespace rlft::options_test

TEST_CASE("a bad option in the file names its own key, line and column") {
  using namespace rlft::options_test;
  for (const Row& row : kRows) {
    int line = 0, column = 0;
    const std::string yaml = nested_yaml(row.key, row.value, line, column);
    CHECK_MESSAGE(job_error(yaml, row.also) == fmt::format("job.yaml:{}:{}: {} = {}: {}", line, column, row.key,
                                                           quoted_back(row.value), row.constraint),
                  yaml);
  }
}

TEST_CASE("a bad option given with --set names its key and --set") {
  using namespace rlft::options_test;
  for (const Row& row : kRows) {
    std::vector<std::string> overrides = row.also;
    overrides.push_back(fmt::format("{}={}", row.key, row.value));
    CHECK_MESSAGE(
        job_error("", overrides) == fmt::format("--set: {} = {}: {}", row.key, quoted_back(row.value), row.constraint),
        row.key << "=" << row.value);
  }
}

TEST_CASE("an override of the shipped GRPO config names the key it overrides, not a neighbour") {
  using rlft::ConfigView;
  using rlft::options_test::job_error;
  const std::string grpo = RLFT_SOURCE_DIR "/configs/default/grpo.yaml";
  CHECK(job_error(ConfigView::load(grpo, {"grpo.loss.kl_beta=-1"})) == "--set: grpo.loss.kl_beta = -1: must be >= 0");
  CHECK(job_error(ConfigView::load(grpo, {"optim.weight_decay=-1"})) == "--set: optim.weight_decay = -1: must be >= 0");
}
