#include "reward/rules/repetition.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <set>

#include "core/config.h"
#include "core/error.h"

namespace rlft::reward {
namespace {

template <typename T>
double fraction(const std::vector<T>& units, int n) {
  if (n <= 0 || units.size() < static_cast<std::size_t>(n)) return 0.0;
  const std::size_t total = units.size() - static_cast<std::size_t>(n) + 1;
  std::set<std::vector<T>> distinct;
  for (std::size_t i = 0; i < total; ++i) distinct.emplace(units.begin() + i, units.begin() + i + n);
  return 1.0 - static_cast<double>(distinct.size()) / static_cast<double>(total);
}

}  // namespace

RepetitionOptions RepetitionOptions::from_config(const ConfigView& c) {
  RepetitionOptions o;
  o.n = c.get<int>("n", o.n);
  o.unit = c.get<std::string>("unit", o.unit);
  o.case_sensitive = c.get<bool>("case_sensitive", o.case_sensitive);
  o.penalty = c.get<double>("penalty", o.penalty);
  return o;
}

void RepetitionOptions::validate() const {
  RLFT_CHECK_OPTION(n >= 1 && n <= 64, "n", n, "must be in [1, 64]");
  RLFT_CHECK_OPTION(unit == "words" || unit == "chars" || unit == "tokens", "unit", unit,
                    "must be words, chars or tokens");
  RLFT_CHECK_OPTION(std::isfinite(penalty) && penalty <= 0, "penalty", penalty,
                    "must be a finite number <= 0 (it is a penalty)");
}

double repeated_fraction(const std::vector<std::string>& units, int n) {
  return fraction(units, n);
}
double repeated_fraction(const std::vector<int64_t>& units, int n) {
  return fraction(units, n);
}

std::vector<std::string> split_units(std::string_view text, const RepetitionOptions& o) {
  std::string s(text);
  if (!o.case_sensitive)
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::vector<std::string> out;
  if (o.unit == "chars") {
    for (std::size_t i = 0; i < s.size();) {
      std::size_t j = i + 1;
      while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
      out.push_back(s.substr(i, j - i));
      i = j;
    }
    return out;
  }
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    std::size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

RepetitionReward::RepetitionReward(std::string name, RepetitionOptions options)
    : RewardFn(std::move(name)), o_(std::move(options)) {}

std::vector<double> RepetitionReward::score(const ScoreBatch& batch) {
  const bool tokens = o_.unit == "tokens";
  RLFT_CHECK(!tokens || batch.completion_token_ids.size() == batch.size() || batch.size() == 0,
             "reward '{}' counts token n-grams but the batch has no completion token ids (use unit: words, or pass "
             "ScoreBatch::completion_token_ids)",
             name());
  std::vector<double> out(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const double f = tokens ? repeated_fraction(batch.completion_token_ids[i], o_.n)
                            : repeated_fraction(split_units(batch.completions[i], o_), o_.n);
    out[i] = o_.penalty * f;
  }
  return out;
}

std::unique_ptr<RewardFn> make_repetition_reward(const std::string& name, const ConfigView& section,
                                                 const RewardContext&) {
  return std::make_unique<RepetitionReward>(name, read_options<RepetitionOptions>(section));
}

}  // namespace rlft::reward
