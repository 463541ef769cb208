#pragma once
// The feedback store: people's preferences, in the run store's SQLite file (tables of
// migration 1 → 2 in data/store.cpp):
//
//   feedback_imports  one row per `rlft feedback import`: file, format, counts
//   feedback_pairs    prompt, chosen, rejected (+ optional margin) with provenance — source
//                     file and line, annotator, import time — and a content hash (unique:
//                     the same pair is stored once, whichever file or format brought it)
//   feedback_labels   per-annotator judgements that a labeling page writes: on a stored pair
//                     or on two stored rollouts; choice chosen | rejected | tie | both_bad
//
// A prompt or completion is plain text or a chat conversation (Turns). In a pair they are
// either all text or all chat: a text part is lifted into one chat message when another part
// is chat (a prompt becomes a user message, a completion an assistant message).

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "data/store.h"

namespace rlft::data {

/// Plain text, or a chat conversation when `messages` is non-empty.
struct Turns {
  std::string text;
  std::vector<ChatMessage> messages;

  bool is_chat() const { return !messages.empty(); }
  /// A JSON string, or a list of {"role", "content"} objects.
  nlohmann::json to_json() const;
  /// The same chat, or the text as one message of `role` (for lifting text into a chat pair).
  std::vector<ChatMessage> as_messages(const std::string& role) const;
  bool operator==(const Turns& o) const { return text == o.text && messages == o.messages; }
};

struct PreferencePair {
  int64_t id = 0;  ///< assigned by the store
  Turns prompt;
  Turns chosen;  ///< the preferred completion
  Turns rejected;
  std::optional<double> margin;  ///< how much better chosen is (>= 0), when the source says
  std::string annotator;         ///< "" when unknown
  std::string source_file;       ///< the file it was imported from, as given
  int64_t source_line = 0;       ///< 1-based line in that file
  std::string source_format;     ///< pairs | ranked | scores | hh
  double imported_at = 0.0;      ///< unix seconds
  int64_t import_id = 0;
  std::string content_hash;  ///< sha256 of (prompt, chosen, rejected); set by the store
};

/// Lifts text parts into chat messages when any part is chat (see the header comment).
void unify_turns(PreferencePair& pair);

/// The dedup key: SHA-256 of the canonical JSON [prompt, chosen, rejected] (after
/// unify_turns). Swapping chosen and rejected gives the reversed pair's hash.
std::string pair_content_hash(const Turns& prompt, const Turns& chosen, const Turns& rejected);

/// A judgement a person made. Exactly one target: a stored pair, or two stored rollouts.
struct FeedbackLabel {
  int64_t id = 0;
  std::string annotator;             ///< required
  std::optional<int64_t> pair_id;    ///< a feedback_pairs row …
  std::optional<int64_t> rollout_a;  ///< … or two rollouts rows (a shown first)
  std::optional<int64_t> rollout_b;
  /// "chosen": the pair's chosen (or rollout a) is better; "rejected": the pair's rejected
  /// (or rollout b) is better; "tie"; "both_bad".
  std::string choice;
  std::string reason;       ///< free text, may be ""
  double created_at = 0.0;  ///< unix seconds; 0 = now
};

/// Which pairs to read or export.
struct PairFilter {
  std::string source_file;  ///< "" = any
  std::string annotator;    ///< "" = any
  int64_t limit = -1;       ///< -1 = all
};

struct FeedbackStats {
  int64_t n_pairs = 0;
  int64_t n_chat = 0;  ///< pairs stored as chat
  int64_t n_with_margin = 0;
  double margin_min = 0, margin_mean = 0, margin_max = 0;  ///< over pairs with a margin
  int64_t n_conflicting = 0;                               ///< pairs whose reverse (rejected over chosen) is stored too
  double mean_prompt_chars = 0, mean_chosen_chars = 0, mean_rejected_chars = 0;
  int64_t n_imports = 0;
  struct Source {
    std::string file, format;
    int64_t n_pairs;
  };
  std::vector<Source> sources;                              ///< by file, most pairs first
  std::vector<std::pair<std::string, int64_t>> annotators;  ///< "" = no annotator; most pairs first
  int64_t n_labels = 0;
  std::vector<std::pair<std::string, int64_t>> label_choices;     ///< choice → count
  std::vector<std::pair<std::string, int64_t>> label_annotators;  ///< annotator → count
};

class FeedbackStore {
 public:
  /// Works on an open store (its schema includes the feedback tables).
  explicit FeedbackStore(Store& store) : store_(store) {}

  /// Records the start of an import and returns its id.
  int64_t begin_import(const std::string& source_file, const std::string& format);
  void finish_import(int64_t import_id, int64_t n_lines, int64_t n_pairs, int64_t n_duplicates, int64_t n_invalid);

  /// Inserts a pair (hash and time filled in); false when a pair with the same content is
  /// stored already (nothing written).
  bool add_pair(PreferencePair pair);
  void for_each_pair(const PairFilter& filter, const std::function<void(const PreferencePair&)>& fn);
  std::vector<PreferencePair> pairs(const PairFilter& filter = {});

  /// Validates and inserts a label; throws rlft::Error naming the problem (no annotator, a
  /// bad choice, not exactly one target, a pair or rollout id that does not exist).
  int64_t add_label(FeedbackLabel label);
  std::vector<FeedbackLabel> labels(std::optional<int64_t> pair_id = std::nullopt);

  FeedbackStats stats();

 private:
  Store& store_;
};

}  // namespace rlft::data
