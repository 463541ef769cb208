#pragma once
// Prompt datasets: where a run's prompts (and the reference answers that travel with them)
// come from. A source (a JSONL file with a field mapping, or a built-in generated task) gives
// a list of Examples; load_dataset() then holds out an eval split and shuffles the rest, all
// from `data.seed`, so the same config gives the same split and order on every machine.
//
//   data:
//     source: countdown        # "jsonl" or a built-in task (arithmetic, countdown)
//     seed: 0
//     eval_size: 200
//     countdown: { n_examples: 5000, max_numbers: 4 }
//
// Sources are a registry (register_builtin_sources); docs/rewards.md shows complete configs.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/registry.h"

namespace rlft {
class ConfigView;
}

namespace rlft::data {

struct ChatMessage {
  std::string role;  ///< "system" | "user" | "assistant" | "tool"
  std::string content;
  bool operator==(const ChatMessage& o) const { return role == o.role && content == o.content; }
};

/// One chat message of an input line, {"role": system | user | assistant | tool, "content": str};
/// `at` names it ("messages[2]"). `fail(field, what)` must throw; it is called with the dotted
/// field at fault.
ChatMessage parse_chat_message(const nlohmann::json& m, const std::string& at,
                               const std::function<void(const std::string&, const std::string&)>& fail);

/// One prompt with what rewards need to judge its completions.
struct Example {
  std::string id;  ///< stable and unique in its source: "gsm8k.jsonl:17", "countdown:42"
  std::vector<ChatMessage>
      messages;            ///< the prompt as chat: an optional system message, then the turns; the last is "user"
  std::string reference;   ///< the reference answer ("" when the source has none)
  std::string completion;  ///< a demonstration for SFT ("" when none)
  nlohmann::json meta =
      nlohmann::json::object();  ///< task values rewards read, e.g. countdown {"numbers": [..], "target": n}

  /// The content of the last user message ("" when there is none).
  const std::string& prompt() const;
  /// The content of the first system message ("" when there is none).
  const std::string& system() const;
};

/// What a source produces: its examples and, when it has its own held-out set (a separate
/// eval file), that set.
struct SourceData {
  std::vector<Example> examples;
  std::optional<std::vector<Example>> eval;
};

/// A place prompts come from. `seed` is data.seed (generated tasks draw from it).
class ExampleSource {
 public:
  virtual ~ExampleSource() = default;
  virtual SourceData load(uint64_t seed) const = 0;
  /// One line for logs: "countdown (3-4 numbers up to 99, 5000 examples)".
  virtual std::string describe() const = 0;
};

/// A factory reads its options from the section named after the source (data.<source>),
/// validates them and throws ConfigError naming the key.
using SourceFactory = std::function<std::unique_ptr<ExampleSource>(const ConfigView& section)>;
using SourceRegistry = Registry<SourceFactory>;
/// "jsonl", "arithmetic", "countdown".
void register_builtin_sources(SourceRegistry& registry);
SourceRegistry builtin_sources();

/// How a source's examples become a train and an eval split.
struct SplitOptions {
  int64_t seed = 0;            ///< split, shuffle and generated tasks all derive from it
  bool shuffle = true;         ///< shuffle the training examples (the eval split keeps source order)
  int64_t eval_size = 0;       ///< examples held out for evaluation; wins over eval_fraction when > 0
  double eval_fraction = 0.0;  ///< fraction held out, in [0, 1), when eval_size is 0
  int64_t max_examples = 0;    ///< keep at most this many (after the split, from train); 0 = all

  static SplitOptions from_config(const ConfigView& data_section);
  void validate() const;  ///< throws rlft::OptionError naming the field
};

struct Dataset {
  std::vector<Example> train;
  std::vector<Example> eval;
  std::string description;  ///< the source's describe() and the split sizes
};

/// Holds out the eval split (a seeded choice of eval_size examples, kept in source order)
/// and shuffles the rest when asked. Throws rlft::Error when the split would leave no
/// training example.
Dataset split_examples(std::vector<Example> examples, const SplitOptions& options);

/// Reads the whole `data:` section: the source (data.source, its options under
/// data.<source>) and the split. Throws ConfigError for a bad option or an unknown source
/// (naming the known ones), rlft::Error or InputError for bad data.
Dataset load_dataset(const ConfigView& data_section, const SourceRegistry& sources);

/// The order of `n` examples in epoch `epoch`: a permutation that depends only on
/// (seed, epoch), so a resumed run continues with the same order.
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch);

/// Replaces `{name}` with vars[name]; "{{" and "}}" stand for literal braces. Throws
/// rlft::Error "unknown placeholder {x} (known: a, b)" for a name not in `vars` and for an
/// unclosed brace.
std::string render_template(const std::string& text, const std::map<std::string, std::string>& vars);

/// The placeholders a template uses, in order (for validating a template up front).
std::vector<std::string> template_placeholders(const std::string& text);

}  // namespace rlft::data
