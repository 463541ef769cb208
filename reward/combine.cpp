#include "reward/combine.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cmath>

#include "core/config.h"
#include "core/error.h"

namespace rlft::reward {

void ScoreBatch::validate() const {
  const std::size_t n = completions.size();
  RLFT_CHECK(examples.size() == n, "score batch: {} examples for {} completions", examples.size(), n);
  for (std::size_t i = 0; i < n; ++i)
    RLFT_CHECK(examples[i] != nullptr, "score batch: completion {} has no example", i);
  auto optional = [n](std::size_t size, const char* what) {
    RLFT_CHECK(size == 0 || size == n, "score batch: {} {} for {} completions (give none or one each)", size, what, n);
  };
  optional(completion_tokens.size(), "token counts");
  optional(finish_reasons.size(), "finish reasons");
  optional(prompt_token_ids.size(), "prompt token lists");
  optional(completion_token_ids.size(), "completion token lists");
}

void ScoreBatch::add(const data::Example& example, std::string completion, int64_t n_tokens) {
  examples.push_back(&example);
  completions.push_back(std::move(completion));
  if (n_tokens >= 0) completion_tokens.push_back(n_tokens);
}

void throw_section_error(const ConfigView& section, const std::string& what) {
  section.reject(OptionError("", "", what));
}

std::vector<std::pair<std::string, double>> RewardScores::parts_of(std::size_t i) const {
  std::vector<std::pair<std::string, double>> out;
  for (std::size_t k = 0; k < names.size(); ++k) out.emplace_back(names[k], parts[k].at(i));
  return out;
}

RewardScores RewardScores::select(const std::vector<std::size_t>& rows) const {
  RewardScores out;
  out.names = names;
  out.weights = weights;
  out.seconds = seconds;
  out.parts.resize(parts.size());
  for (const std::size_t r : rows) {
    out.total.push_back(total[r]);
    for (std::size_t k = 0; k < parts.size(); ++k) out.parts[k].push_back(parts[k][r]);
  }
  return out;
}

void RewardScores::append(const RewardScores& other) {
  if (names.empty()) {
    names = other.names;
    weights = other.weights;
    parts.resize(other.names.size());
    seconds.assign(other.names.size(), 0.0);
  }
  total.insert(total.end(), other.total.begin(), other.total.end());
  for (std::size_t k = 0; k < other.parts.size(); ++k) {
    parts[k].insert(parts[k].end(), other.parts[k].begin(), other.parts[k].end());
    seconds[k] += other.seconds[k];
  }
}

std::vector<std::pair<std::string, double>> RewardScores::summary() const {
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / static_cast<double>(v.size());
  };
  const double m = mean(total);
  double var = 0;
  for (double x : total) var += (x - m) * (x - m);
  std::vector<std::pair<std::string, double>> out = {
      {"reward_mean", m}, {"reward_std", total.empty() ? 0.0 : std::sqrt(var / static_cast<double>(total.size()))}};
  for (std::size_t k = 0; k < names.size(); ++k) out.emplace_back("reward/" + names[k], mean(parts[k]));
  return out;
}

void RewardSet::add(std::unique_ptr<RewardFn> fn, double weight, std::string type) {
  RLFT_CHECK(fn != nullptr, "a reward part must not be null");
  RLFT_CHECK(std::isfinite(weight), "reward '{}': the weight must be finite", fn->name());
  for (const auto& p : parts_) RLFT_CHECK(p.fn->name() != fn->name(), "reward '{}' is configured twice", fn->name());
  parts_.push_back({std::move(fn), weight, std::move(type)});
}

RewardSet RewardSet::from_config(const ConfigView& rewards, const RewardRegistry& registry,
                                 const RewardContext& context) {
  RewardSet set;
  const auto names = rewards.keys();
  if (names.empty())
    throw_section_error(rewards, fmt::format("no reward configured: add a section per reward, e.g. `correct: {{type: "
                                             "math_answer}}`; known rewards are {}",
                                             fmt::join(registry.names(), ", ")));
  for (const auto& name : names) {
    const ConfigView section = rewards.section(name);
    const bool typed = section.has("type");
    const std::string type = section.get<std::string>("type", name);
    if (!registry.contains(type)) {
      const std::string msg =
          fmt::format("unknown reward '{}': known rewards are {}", type, fmt::join(registry.names(), ", "));
      if (typed) section.check(false, "type", msg);
      rewards.check(false, name, msg + " (or set `type:` to one of them)");
    }
    const double weight = section.get<double>("weight", 1.0);
    section.check(std::isfinite(weight), "weight", "must be a finite number");
    set.add(registry.get(type)(name, section, context), weight, type);
    section.reject_unknown_keys();
  }
  return set;
}

RewardScores RewardSet::score(const ScoreBatch& batch) {
  batch.validate();
  const std::size_t n = batch.size();
  RewardScores out;
  out.total.assign(n, 0.0);
  for (auto& p : parts_) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<double> s = p.fn->score(batch);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    RLFT_CHECK(s.size() == n, "reward '{}' returned {} scores for {} completions", p.fn->name(), s.size(), n);
    for (std::size_t i = 0; i < n; ++i) {
      RLFT_CHECK(std::isfinite(s[i]), "reward '{}' gave a non-finite score ({}) to completion {} (example '{}')",
                 p.fn->name(), s[i], i, batch.examples[i]->id);
      out.total[i] += p.weight * s[i];
    }
    out.names.push_back(p.fn->name());
    out.weights.push_back(p.weight);
    out.parts.push_back(std::move(s));
    out.seconds.push_back(seconds);
  }
  return out;
}

void RewardSet::check_examples(const std::vector<data::Example>& examples) const {
  for (const auto& p : parts_)
    for (const auto& ex : examples) {
      try {
        p.fn->check_example(ex);
      } catch (const Error& e) {
        throw Error(fmt::format("reward '{}' cannot score example '{}': {}", p.fn->name(), ex.id, e.what()));
      }
    }
}

bool RewardSet::keep_prompt(const data::Example& example) const {
  for (const auto& p : parts_)
    if (!p.fn->keep_prompt(example)) return false;
  return true;
}

int64_t RewardSet::filter_prompts(std::vector<data::Example>& examples) const {
  const std::size_t before = examples.size();
  examples.erase(
      std::remove_if(examples.begin(), examples.end(), [&](const data::Example& e) { return !keep_prompt(e); }),
      examples.end());
  return static_cast<int64_t>(before - examples.size());
}

std::vector<std::string> RewardSet::names() const {
  std::vector<std::string> out;
  for (const auto& p : parts_) out.push_back(p.fn->name());
  return out;
}

std::string RewardSet::describe() const {
  std::vector<std::string> terms;
  for (const auto& p : parts_)
    terms.push_back(p.type.empty() || p.type == p.fn->name()
                        ? fmt::format("{:g}*{}", p.weight, p.fn->name())
                        : fmt::format("{:g}*{}({})", p.weight, p.fn->name(), p.type));
  return fmt::format("{}", fmt::join(terms, " + "));
}

}  // namespace rlft::reward
