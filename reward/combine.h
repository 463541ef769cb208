#pragma once
// RewardSet: a run's reward, the weighted sum of its parts, with every part kept so metrics
// and stored rollouts show each one.
//
//   total[i] = Σ_k weight_k · part_k[i]        (K parts, N completions)
//
// A part with weight 0 is computed and reported but does not count (an accuracy to watch).

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "reward/reward.h"

namespace rlft::reward {

struct RewardScores {
  std::vector<double> total;               ///< [N] the weighted sum
  std::vector<std::string> names;          ///< [K] part names, in config order
  std::vector<double> weights;             ///< [K]
  std::vector<std::vector<double>> parts;  ///< [K][N] each part's unweighted score
  std::vector<double> seconds;             ///< [K] time each part took

  std::size_t size() const { return total.size(); }
  /// Completion i's unweighted parts by name (data::RolloutRecord::parts).
  std::vector<std::pair<std::string, double>> parts_of(std::size_t i) const;
  /// The completions at `rows`, in that order (names, weights and seconds kept).
  RewardScores select(const std::vector<std::size_t>& rows) const;
  /// Appends `other`'s completions (taking its names and weights when this holds none yet);
  /// the parts' seconds add up.
  void append(const RewardScores& other);
  /// Batch means for the metrics: "reward_mean", "reward_std" (population), and
  /// "reward/<part>" (the part's unweighted mean) for every part.
  std::vector<std::pair<std::string, double>> summary() const;
};

class RewardSet {
 public:
  RewardSet() = default;
  /// Adds a part (`type` is the registry name, for describe()). Throws rlft::Error for a
  /// duplicate name or a non-finite weight.
  void add(std::unique_ptr<RewardFn> fn, double weight, std::string type = "");

  /// Reads the `rewards:` section: one sub-section per part (type defaults to the key,
  /// weight to 1). Throws ConfigError naming the key for an unknown reward (listing the
  /// known ones), a bad option or an unknown key, and when no reward is configured.
  static RewardSet from_config(const ConfigView& rewards_section, const RewardRegistry& registry,
                               const RewardContext& context = {});

  /// Scores a batch with every part. Throws rlft::Error naming the part and the completion
  /// when a part returns the wrong count or a non-finite score.
  RewardScores score(const ScoreBatch& batch);
  /// Throws rlft::Error naming the part and the example's id when a part cannot score it.
  void check_examples(const std::vector<data::Example>& examples) const;
  /// False when any part filters the prompt out.
  bool keep_prompt(const data::Example& example) const;
  /// Keeps the examples every part accepts; returns how many were dropped.
  int64_t filter_prompts(std::vector<data::Example>& examples) const;

  std::size_t size() const { return parts_.size(); }
  std::vector<std::string> names() const;
  /// "1*correct(math_answer) + 0.2*fmt(format)" for logs.
  std::string describe() const;

 private:
  struct Part {
    std::unique_ptr<RewardFn> fn;
    double weight;
    std::string type;
  };
  std::vector<Part> parts_;
};

}  // namespace rlft::reward
