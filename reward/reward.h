#pragma once
// RewardFn: one way of scoring completions — a rule (answer check, format, length …) or a
// learned preference model. A run combines several with weights (reward/combine.h).
//
// N = completions in the batch (P prompts × G samples, flattened). Every score is a finite
// double; a learned model computes on its device and hands back the [N] scores the same way.
//
//   rewards:                 # the YAML: one section per part, named by its key
//     correct:               # the part's name (metrics, stored rollouts)
//       type: math_answer    # a registered reward (default: the key itself)
//       weight: 1.0
//     format: { template: think_answer, weight: 0.2 }
//
// Rewards are a registry filled by register_builtin_rewards() (reward/registry.cpp); a
// learned reward model registers the same way, reads its own section (checkpoint path,
// batch size) and scores the whole batch in one call, batching on its device as it likes.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/registry.h"
#include "data/dataset.h"

namespace rlft {
class ConfigView;
}

namespace rlft::reward {

/// What a reward sees: N completions, each with the example (prompt, reference answer,
/// task meta) it answers. Optional vectors are empty or have N entries.
struct ScoreBatch {
  std::vector<const data::Example*> examples;  ///< [N] not owned; the examples of a group repeat
  std::vector<std::string> completions;        ///< [N] decoded completion text
  std::vector<int64_t> completion_tokens;      ///< [N] completion lengths in tokens (optional)
  std::vector<std::string> finish_reasons;     ///< [N] "stop" | "length" (optional)
  std::vector<std::vector<int64_t>>
      prompt_token_ids;  ///< [N][T_prompt] (optional; for learned models sharing the tokenizer)
  std::vector<std::vector<int64_t>> completion_token_ids;  ///< [N][T_completion] (optional)

  std::size_t size() const { return completions.size(); }
  /// Throws rlft::Error when the vectors disagree in length or an example is null.
  void validate() const;
  /// Appends one completion (examples and completions only; test and tool convenience).
  void add(const data::Example& example, std::string completion, int64_t n_tokens = -1);
};

class RewardFn {
 public:
  explicit RewardFn(std::string name) : name_(std::move(name)) {}
  virtual ~RewardFn() = default;
  RewardFn(const RewardFn&) = delete;
  RewardFn& operator=(const RewardFn&) = delete;

  /// The part's name (its key under `rewards:`).
  const std::string& name() const { return name_; }
  /// [N] one finite score per completion. Throws rlft::Error when the batch lacks what the
  /// reward needs (e.g. token counts for a length reward counted in tokens). May be called
  /// from two threads at once (async rollout scores while evaluation scores): keep it free of
  /// unguarded mutable state.
  virtual std::vector<double> score(const ScoreBatch& batch) = 0;
  /// Throws rlft::Error when `example` lacks what this reward needs (a reference answer that
  /// parses, countdown numbers …). Called on the whole dataset before a run starts.
  virtual void check_example(const data::Example& example) const {}
  /// False when the prompt must not be used at all (the blocklist's prompt filter).
  virtual bool keep_prompt(const data::Example& example) const { return true; }

 private:
  std::string name_;
};

/// What a factory may need from the run besides its own section.
struct RewardContext {
  std::string device = "cpu";  ///< where a learned reward model runs ("cpu", "cuda:0" …)
  int64_t seed = 0;            ///< the run seed, for anything random in a reward
};

/// Builds a reward named `name` from its section (type and weight are read by the caller):
/// parses its XxxOptions, validates them, throws ConfigError naming the key.
using RewardFactory = std::function<std::unique_ptr<RewardFn>(const std::string& name, const ConfigView& section,
                                                              const RewardContext& context)>;
using RewardRegistry = Registry<RewardFactory>;

/// math_answer, exact_match, format, countdown, length, repetition, blocklist.
void register_builtin_rewards(RewardRegistry& registry);
RewardRegistry builtin_rewards();

/// Throws ConfigError "file:line:column: <section path>: <what>" for a problem with a section
/// as a whole (no single key to blame, e.g. "set words, patterns or file").
[[noreturn]] void throw_section_error(const ConfigView& section, const std::string& what);

}  // namespace rlft::reward
