#include "reward/rules/math_answer.h"

#include <fmt/format.h>

#include <cmath>
#include <unordered_map>

#include "core/config.h"
#include "core/error.h"

namespace rlft::reward {
namespace {

const std::vector<std::string> kStrategies = {"boxed", "answer_tag", "hash", "last_number"};

/// One number in a span of prose (inside <answer> or after ####): the whole span as a
/// number, else a \boxed inside it, else its only number. Two numbers are ambiguous.
std::optional<MathValue> value_in_span(const std::string& span) {
  if (auto v = parse_math_value(span)) return v;
  const auto boxed = extract_boxed(span);
  if (boxed.size() == 1) return parse_math_value(boxed[0]);
  if (boxed.size() > 1) return std::nullopt;
  const auto numbers = find_numbers(span);
  if (numbers.size() == 1) return parse_math_value(numbers[0]);
  return std::nullopt;
}

/// The value all candidates agree on; nullopt when one is unreadable or two differ.
std::optional<MathValue> agreed_value(const std::vector<std::string>& candidates, bool reject_multiple, double tol,
                                      bool prose) {
  const std::string& last = candidates.back();
  auto read = [prose](const std::string& s) { return prose ? value_in_span(s) : parse_math_value(s); };
  std::optional<MathValue> v = read(last);
  if (!v || !reject_multiple) return v;
  for (std::size_t i = 0; i + 1 < candidates.size(); ++i) {
    auto w = read(candidates[i]);
    if (!w || !math_equal(*v, *w, tol)) return std::nullopt;
  }
  return v;
}

}  // namespace

MathAnswerOptions MathAnswerOptions::from_config(const ConfigView& c) {
  MathAnswerOptions o;
  o.strategies = c.get<std::vector<std::string>>("strategies", o.strategies);
  o.reject_multiple = c.get<bool>("reject_multiple", o.reject_multiple);
  o.tolerance = c.get<double>("tolerance", o.tolerance);
  o.correct = c.get<double>("correct", o.correct);
  o.incorrect = c.get<double>("incorrect", o.incorrect);
  o.no_answer = c.get<double>("no_answer", o.no_answer);
  return o;
}

void MathAnswerOptions::validate() const {
  RLFT_CHECK_OPTION(!strategies.empty(), "strategies", "[]",
                    "must list at least one of boxed, answer_tag, hash, last_number");
  for (const auto& s : strategies)
    RLFT_CHECK_OPTION(std::find(kStrategies.begin(), kStrategies.end(), s) != kStrategies.end(), "strategies", s,
                      "'{}' is not a strategy: use boxed, answer_tag, hash or last_number", s);
  RLFT_CHECK_OPTION(std::isfinite(tolerance) && tolerance >= 0 && tolerance < 1, "tolerance", tolerance,
                    "must be in [0, 1)");
  RLFT_CHECK_OPTION(std::isfinite(correct), "correct", correct, "must be a finite number");
  RLFT_CHECK_OPTION(std::isfinite(incorrect), "incorrect", incorrect, "must be a finite number");
  RLFT_CHECK_OPTION(std::isfinite(no_answer), "no_answer", no_answer, "must be a finite number");
  RLFT_CHECK_OPTION(correct > incorrect, "correct", correct,
                    "must be greater than `incorrect` (or the reward teaches wrong answers)");
}

std::optional<FoundAnswer> find_math_answer(std::string_view text, const MathAnswerOptions& o) {
  for (const auto& strategy : o.strategies) {
    std::vector<std::string> candidates;
    bool prose = false;
    if (strategy == "boxed")
      candidates = extract_boxed(text);
    else if (strategy == "answer_tag")
      candidates = extract_answer_tags(text), prose = true;
    else if (strategy == "hash")
      candidates = extract_hash_answers(text), prose = true;
    else if (strategy == "last_number") {
      const auto numbers = find_numbers(text);
      if (!numbers.empty()) candidates = {numbers.back()};
    }
    if (candidates.empty()) continue;
    return FoundAnswer{strategy, agreed_value(candidates, o.reject_multiple, o.tolerance, prose)};
  }
  return std::nullopt;
}

std::optional<MathValue> reference_value(const std::string& reference, const MathAnswerOptions& o) {
  if (auto v = parse_math_value(reference)) return v;
  auto found = find_math_answer(reference, o);
  if (found && found->value) return found->value;
  return std::nullopt;
}

MathVerdict judge_math_answer(std::string_view completion, const MathValue& reference, const MathAnswerOptions& o) {
  const auto found = find_math_answer(completion, o);
  if (!found) return MathVerdict::kNoAnswer;
  if (found->value && math_equal(*found->value, reference, o.tolerance)) return MathVerdict::kCorrect;
  return MathVerdict::kIncorrect;
}

MathAnswerReward::MathAnswerReward(std::string name, MathAnswerOptions options)
    : RewardFn(std::move(name)), o_(std::move(options)) {}

std::vector<double> MathAnswerReward::score(const ScoreBatch& batch) {
  std::vector<double> out(batch.size());
  std::unordered_map<const data::Example*, std::optional<MathValue>> refs;  // a group shares its example
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const data::Example* ex = batch.examples[i];
    auto it = refs.find(ex);
    if (it == refs.end()) it = refs.emplace(ex, reference_value(ex->reference, o_)).first;
    RLFT_CHECK(it->second.has_value(), "reward '{}': the reference answer of example '{}' is not a number: '{}'",
               name(), ex->id, ex->reference);
    switch (judge_math_answer(batch.completions[i], *it->second, o_)) {
      case MathVerdict::kCorrect:
        out[i] = o_.correct;
        break;
      case MathVerdict::kIncorrect:
        out[i] = o_.incorrect;
        break;
      case MathVerdict::kNoAnswer:
        out[i] = o_.no_answer;
        break;
    }
  }
  return out;
}

void MathAnswerReward::check_example(const data::Example& ex) const {
  RLFT_CHECK(!ex.reference.empty(), "it has no reference answer (map one with data.jsonl.fields.answer)");
  RLFT_CHECK(reference_value(ex.reference, o_).has_value(), "its reference answer is not a number: '{}'", ex.reference);
}

std::unique_ptr<RewardFn> make_math_answer_reward(const std::string& name, const ConfigView& section,
                                                  const RewardContext&) {
  return std::make_unique<MathAnswerReward>(name, read_options<MathAnswerOptions>(section));
}

}  // namespace rlft::reward
