#pragma once
// Preference-data import: JSONL files in the common formats, into the feedback store.
//
//   pairs    {"prompt", "chosen", "rejected", "margin"?, "annotator"?}   (TRL, DeepSpeed-Chat);
//            prompt/chosen/rejected are strings or chat-message lists
//   ranked   {"prompt", "completions": [...], "ranking": [r0, r1, ...]}  r_i = rank of completion
//            i, 1 = best; every pair of different ranks becomes a pair
//   scores   {"prompt" | "instruction", "completions": [{"text" | "response", "score" |
//            "overall_score"}...]} or {"prompt", "completions": [str...], "scores": [x...]}
//            (UltraFeedback-style); pairs whose score difference is >= score_gap
//   hh       {"chosen", "rejected"}: full transcripts ("\n\nHuman: … \n\nAssistant: …") that
//            share a prefix (Anthropic HH-RLHF); split after the last shared "\n\nAssistant:"
//
// An import is one transaction: a bad line aborts it with file:line and the field, nothing
// written — unless skip_invalid, which imports the good lines and reports the bad ones.
// Formats are a registry (register_builtin_preference_formats); docs/feedback.md has examples.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/registry.h"
#include "data/feedback.h"
#include "data/jsonl.h"

namespace rlft::data {

struct ImportOptions {
  std::string path;                                   ///< the JSONL file ("-" = standard input)
  std::string format;                                 ///< a registered format: pairs | ranked | scores | hh
  bool skip_invalid = false;                          ///< import the good lines, report the bad ones
  std::string annotator;                              ///< for lines without an "annotator" field ("" = none)
  double score_gap = 1.0;                             ///< scores: the smallest score difference that makes a pair (> 0)
  bool margin_from_scores = false;                    ///< scores: set each pair's margin to its score difference
  std::size_t max_line_bytes = kDefaultMaxLineBytes;  ///< a longer line is invalid
  bool dry_run = false;                               ///< validate and count, write nothing
  std::size_t max_reported = 100;                     ///< bad lines kept in the report (all are counted)
};

/// One bad line, as reported.
struct BadLine {
  int64_t line = 0;
  int64_t column = 0;   ///< 0 = unknown
  std::string field;    ///< "" = the line as a whole
  std::string message;  ///< "file:line[:column]: …"
};

struct ImportReport {
  int64_t import_id = 0;     ///< 0 for a dry run
  int64_t n_lines = 0;       ///< non-blank lines read
  int64_t n_found = 0;       ///< pairs the lines gave
  int64_t n_inserted = 0;    ///< pairs written
  int64_t n_duplicates = 0;  ///< pairs already stored (or repeated in the file)
  int64_t n_no_pairs = 0;    ///< valid lines that gave no pair (scores within the gap, one rank)
  int64_t n_invalid = 0;     ///< bad lines (skip_invalid only; otherwise the import throws)
  std::vector<BadLine> bad;  ///< the first max_reported bad lines
};

/// A preference format: turns one parsed JSON line into pairs (prompt, chosen, rejected,
/// margin, annotator; provenance is filled by the importer). Throws InputError naming the
/// field for a bad line.
struct PreferenceFormat {
  std::string description;  ///< one line for --help
  std::function<std::vector<PreferencePair>(const nlohmann::json& row, const ImportOptions& options,
                                            const std::string& file, int64_t line)>
      parse;
};
using PreferenceFormatRegistry = Registry<PreferenceFormat>;
/// pairs, ranked, scores, hh.
void register_builtin_preference_formats(PreferenceFormatRegistry& registry);
PreferenceFormatRegistry builtin_preference_formats();

/// Imports `options.path` into `store`. Throws InputError (file:line[:column], the field)
/// on the first bad line unless skip_invalid; rlft::Error for an unknown format or an
/// unreadable file. Nothing is written when it throws.
ImportReport import_preferences(Store& store, const ImportOptions& options, const PreferenceFormatRegistry& formats);

/// Writes pairs as JSONL in the `pairs` format (with "margin" and "annotator" when set, and
/// "source": "file:line" for provenance), so that importing the output gives the same
/// pairs. Returns the number written.
int64_t export_preferences(Store& store, const PairFilter& filter, std::ostream& out);

}  // namespace rlft::data
