#pragma once
// A prompt dataset from a JSONL file: one JSON object per line, mapped onto Examples by the
// `data.jsonl.fields` section (YAML), e.g. for GSM8K:
//
//   data:
//     source: jsonl
//     jsonl:
//       path: data/gsm8k_train.jsonl
//       fields: { prompt: question, answer: answer }
//       system_prompt: "Solve the problem. Put the final answer after ####."
//
// Bad rows are errors with file:line and the field ("gsm8k.jsonl:17: field 'question' is
// missing"); there is no silent skipping of prompts.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "data/jsonl.h"

namespace rlft::data {

/// Which key of a row fills which part of an Example. Keys may be dotted ("meta.question").
struct FieldMap {
  std::string prompt = "prompt";  ///< the user prompt (a string); unused when `messages` is set
  /// A chat-message list [{"role","content"}…] ("" = none); a trailing assistant message becomes the completion.
  std::string messages;
  std::string answer;      ///< the reference answer, a string or a number ("" = none)
  std::string system;      ///< a per-row system prompt ("" = none); wins over system_prompt
  std::string completion;  ///< a demonstration for SFT ("" = none)
  std::string id;          ///< a unique id ("" = "<file name>:<line>")
  std::vector<std::pair<std::string, std::string>>
      meta;  ///< meta name → row key, copied as JSON (countdown: numbers, target)
};

struct JsonlOptions {
  std::string path;       ///< the training JSONL file
  std::string eval_path;  ///< a separate eval file with the same fields ("" = split from `path`)
  FieldMap fields;
  std::string system_prompt;  ///< a system message for rows without their own ("" = none)
  std::string prompt_template =
      "{prompt}";  ///< wraps the prompt; placeholders: {prompt} and any top-level string or number field of the row
  int64_t max_line_bytes = static_cast<int64_t>(kDefaultMaxLineBytes);  ///< a longer line is an error

  /// Reads `data.jsonl` (every key but `path` optional); read_options() also validates.
  static JsonlOptions from_config(const ConfigView& section);
  void validate() const;  ///< throws rlft::OptionError naming the field
};

/// Reads every row of `path` with the options' mapping. Blank lines are skipped. Throws
/// InputError (file:line[:column], the field) for malformed JSON, invalid UTF-8, an
/// over-long line, a missing or empty field, a field of the wrong type or a duplicate id.
std::vector<Example> read_jsonl_examples(const std::string& path, const JsonlOptions& options);

std::unique_ptr<ExampleSource> make_jsonl_source(const ConfigView& section);

}  // namespace rlft::data
