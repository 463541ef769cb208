#pragma once
// blocklist: the content filter. Penalises completions that contain a listed phrase or
// match a listed pattern, and (drop_prompts) keeps prompts that do out of the run.
//
// Phrases come from `words` and from `file` (one per line; blank lines and lines starting
// with '#' are skipped); `patterns` are PCRE2 regular expressions. Phrases match as whole
// words (whole_words) and case-blind unless case_sensitive — Unicode-aware in both.
// A pattern that does not compile is a ConfigError naming `patterns[i]`.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reward/regex.h"
#include "reward/reward.h"

namespace rlft::reward {

struct BlocklistOptions {
  std::vector<std::string> words;     ///< literal phrases
  std::vector<std::string> patterns;  ///< regular expressions (PCRE2)
  std::string file;                   ///< a phrase file ("" = none)
  bool case_sensitive = false;
  bool whole_words = true;        ///< a phrase matches only between non-word characters
  double penalty = -1.0;          ///< the score of a completion that matches (0 otherwise)
  bool check_completions = true;  ///< score completions (false: only filter prompts)
  bool drop_prompts = false;      ///< prompts (any message) that match are dropped from the run

  static BlocklistOptions from_config(const ConfigView& section);
  void validate() const;  ///< throws rlft::OptionError naming the field
};

/// The compiled list.
class Blocklist {
 public:
  /// Reads `file` and compiles everything; throws rlft::Error naming the pattern or file.
  explicit Blocklist(const BlocklistOptions& options);
  /// True when `text` contains a phrase or matches a pattern.
  bool matches(std::string_view text) const;

 private:
  std::vector<Regex> regexes_;
};

class BlocklistReward : public RewardFn {
 public:
  BlocklistReward(std::string name, BlocklistOptions options);
  std::vector<double> score(const ScoreBatch& batch) override;
  bool keep_prompt(const data::Example& example) const override;

 private:
  BlocklistOptions o_;
  Blocklist list_;
};

std::unique_ptr<RewardFn> make_blocklist_reward(const std::string& name, const ConfigView& section,
                                                const RewardContext& context);

}  // namespace rlft::reward
