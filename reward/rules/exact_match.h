#pragma once
// exact_match: the completion's answer equals the reference after normalisation.
//
// extract: none (the whole completion) | answer_tag (the last <answer>…</answer>) | boxed
// (the last \boxed{…}) | last_line. Both sides are then normalised the same way. An empty
// answer never matches, even an empty reference (a reward for saying nothing is the classic
// hack). Case folding and punctuation are ASCII-only.

#include <memory>
#include <optional>
#include <string>

#include "reward/reward.h"

namespace rlft::reward {

struct ExactMatchOptions {
  std::string extract = "none";     ///< none | answer_tag | boxed | last_line
  bool case_sensitive = false;      ///< false: ASCII letters compare case-blind
  bool collapse_whitespace = true;  ///< runs of whitespace become one space; ends are always trimmed
  bool strip_punctuation = false;   ///< drop ASCII punctuation before comparing
  bool remove_articles = false;     ///< drop the words a, an, the (SQuAD's normalisation); implies collapse_whitespace
  double correct = 1.0;             ///< score of a match
  double incorrect = 0.0;           ///< score otherwise (also when the answer cannot be extracted)

  static ExactMatchOptions from_config(const ConfigView& section);
  void validate() const;  ///< throws rlft::OptionError naming the field
};

/// `text` normalised by the options (the extraction is not applied here).
std::string normalise_answer(std::string_view text, const ExactMatchOptions& options);
/// The span `extract` selects; nullopt when it finds nothing.
std::optional<std::string> extract_for_match(std::string_view completion, const std::string& extract);
bool exact_match(std::string_view completion, std::string_view reference, const ExactMatchOptions& options);

class ExactMatchReward : public RewardFn {
 public:
  ExactMatchReward(std::string name, ExactMatchOptions options);
  std::vector<double> score(const ScoreBatch& batch) override;
  void check_example(const data::Example& example) const override;

 private:
  ExactMatchOptions o_;
};

std::unique_ptr<RewardFn> make_exact_match_reward(const std::string& name, const ConfigView& section,
                                                  const RewardContext& context);

}  // namespace rlft::reward
