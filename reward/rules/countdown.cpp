#include "reward/rules/countdown.h"

#include <fmt/format.h>

#include <cmath>

#include "core/config.h"
#include "core/error.h"
#include "reward/rules/answer.h"

namespace rlft::reward {
namespace {

struct Task {
  std::vector<int64_t> numbers;
  int64_t target = 0;
  bool use_all = false;
};

/// Reads meta.numbers and meta.target; throws rlft::Error saying what is missing or wrong.
Task read_task(const data::Example& ex) {
  const auto& m = ex.meta;
  Task t;
  RLFT_CHECK(m.is_object() && m.contains("numbers") && m.contains("target"),
             "it has no meta.numbers and meta.target (map them with data.jsonl.fields.meta)");
  const auto& numbers = m.at("numbers");
  RLFT_CHECK(numbers.is_array() && !numbers.empty(), "meta.numbers must be a non-empty list of integers");
  for (const auto& n : numbers) {
    RLFT_CHECK(n.is_number_integer() && n.get<int64_t>() >= 0, "meta.numbers must hold non-negative integers, got {}",
               n.dump());
    t.numbers.push_back(n.get<int64_t>());
  }
  const auto& target = m.at("target");
  RLFT_CHECK(target.is_number_integer(), "meta.target must be an integer, got {}", target.dump());
  t.target = target.get<int64_t>();
  if (m.contains("use_all")) {
    RLFT_CHECK(m.at("use_all").is_boolean(), "meta.use_all must be true or false");
    t.use_all = m.at("use_all").get<bool>();
  }
  return t;
}

}  // namespace

CountdownRewardOptions CountdownRewardOptions::from_config(const ConfigView& c) {
  CountdownRewardOptions o;
  o.extract = c.get<std::string>("extract", o.extract);
  o.correct = c.get<double>("correct", o.correct);
  o.wrong_value = c.get<double>("wrong_value", o.wrong_value);
  o.invalid = c.get<double>("invalid", o.invalid);
  o.use_all = c.get<bool>("use_all", o.use_all);
  o.integer_division = c.get<bool>("integer_division", o.integer_division);
  o.allow_equals = c.get<bool>("allow_equals", o.allow_equals);
  o.reject_multiple = c.get<bool>("reject_multiple", o.reject_multiple);
  o.max_chars = c.get<int64_t>("max_chars", o.max_chars);
  o.max_depth = c.get<int>("max_depth", o.max_depth);
  return o;
}

void CountdownRewardOptions::validate() const {
  RLFT_CHECK_OPTION(extract == "answer_tag" || extract == "last_line" || extract == "full", "extract", extract,
                    "must be answer_tag, last_line or full");
  RLFT_CHECK_OPTION(std::isfinite(correct), "correct", correct, "must be a finite number");
  RLFT_CHECK_OPTION(std::isfinite(wrong_value), "wrong_value", wrong_value, "must be a finite number");
  RLFT_CHECK_OPTION(std::isfinite(invalid), "invalid", invalid, "must be a finite number");
  RLFT_CHECK_OPTION(correct > wrong_value && correct > invalid, "correct", correct,
                    "must be greater than `wrong_value` and `invalid`");
  RLFT_CHECK_OPTION(max_chars >= 1 && max_chars <= 4096, "max_chars", max_chars, "must be in [1, 4096]");
  RLFT_CHECK_OPTION(max_depth >= 1 && max_depth <= 64, "max_depth", max_depth, "must be in [1, 64]");
}

CountdownVerdict judge_countdown(std::string_view completion, const std::vector<int64_t>& numbers, int64_t target,
                                 bool use_all, const CountdownRewardOptions& o, std::string* why) {
  auto invalid = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return CountdownVerdict::kInvalid;
  };
  std::string equation;
  if (o.extract == "answer_tag") {
    const auto tags = extract_answer_tags(completion);
    if (tags.empty()) return invalid("no <answer>…</answer>");
    if (tags.size() > 1 && o.reject_multiple) return invalid("more than one <answer> block");
    equation = tags.back();
  } else if (o.extract == "last_line") {
    equation = last_line(completion);
  } else {
    equation = std::string(completion);
  }
  std::string_view expr = trim(equation);
  if (expr.empty()) return invalid("an empty equation");
  if (expr.size() > static_cast<std::size_t>(o.max_chars)) return invalid("the equation is too long");
  if (o.allow_equals) {
    const std::size_t eq = expr.rfind('=');
    if (eq != std::string_view::npos) {
      const std::string_view rhs = trim(expr.substr(eq + 1));
      const bool number = !rhs.empty() && rhs.find_first_not_of("0123456789") == std::string_view::npos;
      if (!number) return invalid("'=' must be followed by a number");
      expr = trim(expr.substr(0, eq));
    }
  }
  data::tasks::ExpressionLimits limits;
  limits.max_chars = static_cast<std::size_t>(o.max_chars);
  limits.max_depth = o.max_depth;
  limits.max_numbers = static_cast<int>(numbers.size());
  limits.integer_division = o.integer_division;
  const auto value = data::tasks::evaluate_expression(expr, limits);
  if (!value.ok) return invalid(value.error);
  if (!data::tasks::uses_numbers(value.numbers, numbers, use_all || o.use_all))
    return invalid(use_all || o.use_all ? "not every given number used exactly once"
                                        : "a number that is not given, or used too often");
  if (!value.equals(target)) {
    if (why) *why = fmt::format("the value is {}/{}, not {}", value.numerator, value.denominator, target);
    return CountdownVerdict::kWrongValue;
  }
  return CountdownVerdict::kCorrect;
}

CountdownReward::CountdownReward(std::string name, CountdownRewardOptions options)
    : RewardFn(std::move(name)), o_(std::move(options)) {}

std::vector<double> CountdownReward::score(const ScoreBatch& batch) {
  std::vector<double> out(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    Task t;
    try {
      t = read_task(*batch.examples[i]);
    } catch (const Error& e) {
      throw Error(fmt::format("reward '{}' cannot score example '{}': {}", name(), batch.examples[i]->id, e.what()));
    }
    switch (judge_countdown(batch.completions[i], t.numbers, t.target, t.use_all, o_)) {
      case CountdownVerdict::kCorrect:
        out[i] = o_.correct;
        break;
      case CountdownVerdict::kWrongValue:
        out[i] = o_.wrong_value;
        break;
      case CountdownVerdict::kInvalid:
        out[i] = o_.invalid;
        break;
    }
  }
  return out;
}

void CountdownReward::check_example(const data::Example& ex) const {
  read_task(ex);
}

std::unique_ptr<RewardFn> make_countdown_reward(const std::string& name, const ConfigView& section,
                                                const RewardContext&) {
  return std::make_unique<CountdownReward>(name, read_options<CountdownRewardOptions>(section));
}

}  // namespace rlft::reward
