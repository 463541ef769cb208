#pragma once
// A training job: every section of its YAML parsed and validated up front (parse_job), then
// the run's resources set up once (Job): the run's directory and store record, the process
// group, the device, the tokenizer (loaded, or trained on the run's data), the policy
// (loaded, or built from `model:` and initialised from run.seed), the prompts rendered and
// encoded, the rewards.
//
// The trainers take a Job and their own options: run_grpo (rl/grpo_trainer.h), run_sft
// (rl/sft_trainer.h), run_rm (rl/rm_trainer.h), run_dpo (rl/dpo_trainer.h); evaluation
// (rl/evaluate.h) runs on a Job.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/distributed.h"
#include "core/run_options.h"
#include "data/dataset.h"
#include "data/store.h"
#include "policy/causal_lm.h"
#include "policy/lora.h"
#include "policy/model_config.h"
#include "policy/tokenizer/chat_template.h"
#include "policy/tokenizer/prompt.h"
#include "policy/tokenizer/tokenizer.h"
#include "reward/combine.h"
#include "rl/sequence_batch.h"
#include "rl/train_options.h"

namespace rlft::rl {

enum class JobKind { kGrpo, kSft, kRm, kDpo, kAny };

/// The sections every job has, parsed and validated; data loaded, rewards built. A trainer's
/// own section comes beside it (TrainerSections) and goes to the trainer, not to the Job.
struct JobSpec {
  JobKind kind = JobKind::kAny;  ///< what parse_job read it for (a GRPO job may split its ranks)
  RunOptions run;
  PolicySource policy;
  std::optional<policy::ModelConfig> model;  ///< `model:` (a policy built from scratch)
  std::optional<policy::LoraOptions> lora;   ///< `lora:` (train adapters, the base frozen)
  TokenizerSource tokenizer;
  tokenizer::PromptOptions prompt;
  PrecisionOptions precision;
  OptimOptions optim;
  CheckpointOptions checkpoint;
  MemoryOptions memory;
  DistributedOptions distributed;
  EvalOptions eval;
  /// Text a trained tokenizer also learns from (a reward model's preference pairs).
  std::vector<std::string> tokenizer_corpus;
  data::Dataset dataset;
  std::shared_ptr<reward::RewardSet> rewards;  ///< null when the config has no `rewards:`
  std::string config_yaml;                     ///< the resolved YAML, defaults filled in
  std::string config_hash;                     ///< ConfigView::run_hash()
  std::string legacy_config_hash;  ///< the whole resolved config's hash (what runs before run_hash stored; --resume
                                   ///< accepts either)
  std::string config_file;
};

/// The trainers' own sections: the one `kind` runs always, the others where the config has
/// them (so `rlft config show` and `rlft eval` check every section present).
struct TrainerSections {
  std::optional<GrpoOptions> grpo;  ///< `grpo:` (rlft train)
  std::optional<SftOptions> sft;    ///< `sft:` (rlft sft)
  std::optional<RmOptions> rm;      ///< `rm:` (rlft rm train)
  std::optional<DpoOptions> dpo;    ///< `dpo:` (rlft dpo)
};

struct ParsedJob {
  JobSpec spec;
  TrainerSections trainers;
};

/// Parses every section `kind` needs (kAny: whatever is present), loads the data, builds the
/// rewards and rejects unknown keys. Throws ConfigError (file:line:column, key) or rlft::Error.
ParsedJob parse_job(const ConfigView& view, JobKind kind);

/// What a run directory holds (written by rank 0 alone in a multi-rank run):
///   OUT/checkpoints/step-000100/   an HF model directory (+ tokenizer.json) and trainer_state/
///   OUT/final/                     the last weights, an HF model directory
/// With LoRA both hold a PEFT adapter directory instead (adapter_config.json,
/// adapter_model.safetensors) naming the base; a base built from `model:` is OUT/base/.
///   OUT/tokenizer.json             the tokenizer the run uses
///   OUT/tokenizer_config.json, OUT/chat_template.jinja   the tokenizer's, when it has them
class Job {
 public:
  /// Joins the process group the environment describes (a world of one without a launcher),
  /// checks that every rank holds the same config, creates (or, with `resume`, reopens) the
  /// run — output directory and store record on rank 0 only — and sets up the tokenizer (rank
  /// 0's, broadcast) and the policy (built or loaded on every rank and checked equal by hash;
  /// on resume rank 0's checkpoint, broadcast). `kind_name` is the store's run kind.
  Job(JobSpec spec, const std::string& kind_name, bool resume);
  ~Job();

  JobSpec& spec() { return spec_; }
  const std::string& output_dir() const { return out_dir_; }
  const std::string& run_name() const { return spec_.run.name; }
  /// The store (rank 0 only: other ranks have none and throw).
  data::Store& store();
  /// The process group of the ranks doing this rank's work (a world of one when not launched
  /// with several ranks): every rank, or with distributed.rollout_ranks the trainer ranks (on
  /// a trainer rank) or the rollout ranks (on a rollout rank).
  dist::Context& dist() { return *dist_; }
  /// Every rank of the job (dist() unless there are rollout ranks).
  dist::Context& world() { return *world_; }
  /// Rank 0 of the whole job (which writes the run directory and the store).
  bool is_main() const { return world_->is_main(); }
  /// distributed.rollout_ranks in a GRPO run (0: every rank trains).
  int rollout_ranks() const { return rollout_ranks_; }
  /// Whether this rank only samples (one of the last rollout_ranks() ranks).
  bool is_rollout_rank() const { return rollout_ranks_ > 0 && world_->rank() >= world_->world_size() - rollout_ranks_; }
  /// Rank 0 and the rollout ranks, for the weights (null on other ranks, or without rollout ranks).
  dist::Context* weight_sync() { return weight_sync_.get(); }
  int64_t run_id() const { return run_id_; }
  const tokenizer::Tokenizer& tok() const { return *tok_; }
  const std::string& tokenizer_path() const { return tokenizer_path_; }
  policy::CausalLM& model() { return model_; }
  at::Device device() const { return device_; }
  int64_t eos_id() const { return eos_id_; }
  /// The newest checkpoint directory when resuming ("" otherwise).
  const std::string& resume_from() const { return resume_from_; }

  /// The prompt as the policy sees it: the example's chat rendered with the chat template (or
  /// prompt.chat's format), else its prompt in prompt.template.
  std::string prompt_text(const data::Example& example) const;
  std::vector<int64_t> encode_prompt(const data::Example& example) const;
  /// A text's ids followed by EOS.
  std::vector<int64_t> encode_completion(const std::string& text) const;
  /// The assistant's `reply` to `example` as the policy would write it: under a chat template,
  /// what rendering the chat with the reply adds after the rendered prompt (the template's own
  /// end-of-turn tokens included); otherwise encode_completion(reply). Throws rlft::Error naming
  /// the example when the template renders the prompt differently once the reply follows.
  std::vector<int64_t> encode_reply(const data::Example& example, const std::string& reply) const;
  /// The whole conversation, `reply` its last assistant turn, for training on every assistant
  /// turn (sft.train_on: assistant_turns): the prompt is what precedes the first assistant text,
  /// the completion the rest, its token_mask 1 on the assistant text that the chat template
  /// marks (tokenizer::ChatTemplate::render_conversation). Each stretch is encoded on its own.
  /// Needs a chat template; rlft::Error naming the example otherwise or when the template marks
  /// no assistant text. `all_turns` false: only the last marked stretch (the reply) counts,
  /// and the prompt is everything before it.
  Sequence encode_conversation(const data::Example& example, const std::string& reply, bool all_turns = true) const;
  /// The chat template chat data is rendered with (null: prompt.chat or prompt.template).
  const tokenizer::ChatTemplate* chat_template() const { return chat_template_.get(); }
  /// prompt.chat_template_kwargs (an object; empty when none).
  const nlohmann::ordered_json& chat_template_kwargs() const { return chat_template_kwargs_; }
  std::string decode(const std::vector<int64_t>& ids) const;

  /// Writes the store's metrics for `step` and nothing else (nothing on ranks other than 0).
  void log_metrics(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  /// Marks the run finished/failed/interrupted (rank 0; other ranks only note it).
  void finish(const std::string& status, const std::string& error = "");

  /// Whether the policy trains LoRA adapters (`lora:` or policy.adapter).
  bool uses_lora() const { return spec_.lora.has_value() || !spec_.policy.adapter.empty(); }
  /// The adapters' base model directory (absolute; OUT/base for a policy built from
  /// `model:`), written into adapter_config.json. "" without LoRA.
  const std::string& adapter_base() const { return adapter_base_; }

  /// The policy as the run started: policy.path loaded again, or `model:` initialised from
  /// run.seed again (the frozen reference of a KL penalty; the same after a resume).
  policy::CausalLM initial_policy() const;

 private:
  void setup_tokenizer();
  void setup_tokenizer_file();  // rank 0: OUT/tokenizer.json found, copied or trained
  void setup_chat_template();   // the checkpoint's (or prompt.chat_template's) Jinja template
  void setup_policy();
  void setup_adapters();  // LoRA: see job.cpp
  void open_run(const std::string& kind_name, bool resume);
  void check_same_config();    // every rank: the same config hash, or an error naming the first difference
  void split_rollout_ranks();  // distributed.rollout_ranks: the trainer, rollout and weights groups
  JobSpec spec_;
  std::shared_ptr<dist::Context> world_, dist_, weight_sync_;
  int rollout_ranks_ = 0;
  std::string out_dir_;
  std::unique_ptr<data::Store> store_;
  int64_t run_id_ = 0;
  bool finished_ = false;
  std::unique_ptr<tokenizer::Tokenizer> tok_;
  std::unique_ptr<tokenizer::ChatFormat> chat_;
  std::unique_ptr<tokenizer::ChatTemplate> chat_template_;
  nlohmann::ordered_json chat_template_kwargs_;
  std::string tokenizer_path_;
  policy::CausalLM model_{nullptr};
  at::Device device_{at::kCPU};
  int64_t eos_id_ = 0;
  std::string resume_from_;
  std::string adapter_base_;
};

/// Newest `step-N` directory under DIR/checkpoints holding a complete checkpoint ("" if none).
std::string latest_checkpoint(const std::string& output_dir);

}  // namespace rlft::rl
