#pragma once
// What an annotator labels next, and what the labels add up to. Labels live in the feedback
// store's feedback_labels table (data/feedback.h), which `rlft rm train` reads.
//
// A source of comparisons is either a run's stored rollouts ("run:ID" or "run:ID:STEP":
// completions 2k and 2k+1 of the same prompt group, shown in that order) or the imported
// preference pairs ("pairs": chosen and rejected, shown in an order drawn per annotator and
// pair, so the stored order does not leak). Every annotator walks the same list in the same
// order, so the first pairs are seen by several people and agreement can be measured.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/store.h"
#include "policy/tokenizer/chat_template.h"

namespace rlft::app::serve {

struct LabelSource {
  enum class Kind { kRun, kPairs } kind = Kind::kPairs;
  int64_t run_id = 0;
  std::optional<int64_t> step;  ///< only this step's rollouts

  /// "run:3", "run:3:40" or "pairs"; throws rlft::UsageError naming the text otherwise.
  static LabelSource parse(const std::string& text);
  std::string to_string() const;
};

/// One comparison as shown: prompt, left and right completion.
struct Comparison {
  std::optional<int64_t> pair_id;        ///< set for imported pairs …
  int64_t rollout_a = 0, rollout_b = 0;  ///< … else the two rollouts (a on the left)
  bool swapped = false;                  ///< pairs only: the rejected completion is on the left
  std::string prompt, left, right;
  std::string context;  ///< "run r step 4, prompt 2" or "pair 17 (file.jsonl:3)"
};

struct SourceProgress {
  int64_t n_total = 0;  ///< comparisons in the source
  int64_t n_done = 0;   ///< of those, labeled by this annotator
};

/// The first comparison of `source` that `annotator` has not labeled; nullopt when done.
/// An imported chat pair is shown as `chat_template` renders it (the prompt with the generation
/// prompt; each reply as what its assistant turn adds), or as "role: content" paragraphs
/// without one or where the template refuses the conversation (the context then says why).
/// Rollouts are shown as stored: their prompt already as the policy saw it.
std::optional<Comparison> next_comparison(data::Store& store, const LabelSource& source, const std::string& annotator,
                                          const tokenizer::ChatTemplate* chat_template = nullptr);
/// One comparison by its ids (used when a label is posted), or nullopt when it is not in the source.
std::optional<Comparison> find_comparison(data::Store& store, const LabelSource& source, const std::string& annotator,
                                          std::optional<int64_t> pair_id, int64_t rollout_a, int64_t rollout_b,
                                          const tokenizer::ChatTemplate* chat_template = nullptr);
SourceProgress source_progress(data::Store& store, const LabelSource& source, const std::string& annotator);

/// "a" (left better), "b", "tie" or "both_bad" as the feedback store's choice for `c`:
/// chosen / rejected name the pair's chosen or rollout a, so the left/right order is undone.
std::string store_choice(const Comparison& c, const std::string& shown_choice);

/// One annotator's totals over every source.
struct AnnotatorProgress {
  std::string annotator;
  int64_t n_labels = 0;
  int64_t n_a = 0, n_b = 0, n_tie = 0, n_both_bad = 0;  ///< chosen, rejected, tie, both_bad
  double last_at = 0;
};

/// Agreement between annotators on comparisons that more than one labeled (each
/// annotator's newest label counts): the share of annotator pairs that gave the same choice.
struct Agreement {
  int64_t n_shared = 0;           ///< comparisons with labels from >= 2 annotators
  int64_t n_annotator_pairs = 0;  ///< (comparison, annotator, annotator) triples
  int64_t n_agreeing = 0;
  double rate() const { return n_annotator_pairs ? double(n_agreeing) / double(n_annotator_pairs) : 0.0; }
};

std::vector<AnnotatorProgress> annotator_progress(data::Store& store);
Agreement label_agreement(data::Store& store);

}  // namespace rlft::app::serve
