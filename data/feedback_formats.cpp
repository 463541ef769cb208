// The preference formats of data/feedback_import.h: one parser per format, each turning a
// JSON line into pairs and naming the field at fault when the line is bad.
#include <fmt/format.h>

#include <cmath>
#include <set>

#include "data/feedback_import.h"

namespace rlft::data {
namespace {

constexpr const char* kHumanTurn = "\n\nHuman:";
constexpr const char* kAssistantTurn = "\n\nAssistant:";

/// Field access for one line, with errors that name the field.
class Line {
 public:
  Line(const nlohmann::json& row, const std::string& file, int64_t line) : row_(row), file_(file), line_(line) {
    if (!row.is_object())
      throw InputError(file, line, 1, "", fmt::format("expected a JSON object, got {}", json_type_name(row)));
  }

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw InputError(file_, line_, 0, field, fmt::format("field '{}' {}", field, what));
  }
  const nlohmann::json* find(const std::string& key) const {
    auto it = row_.find(key);
    return it == row_.end() || it->is_null() ? nullptr : &*it;
  }
  /// The first of `keys` present; fails naming them all when none is.
  std::pair<std::string, const nlohmann::json*> required(std::initializer_list<const char*> keys) const {
    for (const char* k : keys)
      if (const auto* v = find(k)) return {k, v};
    std::string alternatives;
    for (auto it = keys.begin() + 1; it != keys.end(); ++it) alternatives += fmt::format(" (or '{}')", *it);
    fail(*keys.begin(), "is missing" + alternatives);
  }

  Turns turns(const nlohmann::json& v, const std::string& field) const {
    Turns t;
    if (v.is_string()) {
      t.text = v.get<std::string>();
      if (is_blank(t.text)) fail(field, "is empty");
      return t;
    }
    if (!v.is_array())
      fail(field, fmt::format("must be a string or a list of chat messages, got {}", json_type_name(v)));
    if (v.empty()) fail(field, "is an empty list");
    bool any_text = false;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const std::string at = fmt::format("{}[{}]", field, i);
      t.messages.push_back(
          parse_chat_message(v[i], at, [this](const std::string& f, const std::string& w) { fail(f, w); }));
      any_text = any_text || !is_blank(t.messages.back().content);
    }
    if (!any_text) fail(field, "has no text (every message is empty)");
    return t;
  }
  Turns turns(std::initializer_list<const char*> keys) const {
    auto [key, v] = required(keys);
    return turns(*v, key);
  }

  std::optional<double> number(const std::string& key, const nlohmann::json& v) const {
    if (!v.is_number()) fail(key, fmt::format("must be a number, got {}", json_type_name(v)));
    const double x = v.get<double>();
    if (!std::isfinite(x)) fail(key, "must be a finite number");
    return x;
  }
  std::optional<double> margin() const {
    const auto* v = find("margin");
    if (!v) return std::nullopt;
    auto m = number("margin", *v);
    if (*m < 0) fail("margin", fmt::format("is {}: must be >= 0", *m));
    return m;
  }
  std::string annotator(const ImportOptions& o) const {
    const auto* v = find("annotator");
    if (!v) return o.annotator;
    if (!v->is_string()) fail("annotator", fmt::format("must be a string, got {}", json_type_name(*v)));
    return is_blank(v->get<std::string>()) ? o.annotator : v->get<std::string>();
  }

  const nlohmann::json& list(std::initializer_list<const char*> keys, std::size_t min_size) const {
    auto [key, v] = required(keys);
    if (!v->is_array()) fail(key, fmt::format("must be a list, got {}", json_type_name(*v)));
    if (v->size() < min_size) fail(key, fmt::format("has {} entries: needs at least {}", v->size(), min_size));
    return *v;
  }

 private:
  const nlohmann::json& row_;
  const std::string& file_;
  int64_t line_;
};

PreferencePair make_pair(Turns prompt, Turns chosen, Turns rejected, std::optional<double> margin,
                         std::string annotator) {
  PreferencePair p;
  p.prompt = std::move(prompt);
  p.chosen = std::move(chosen);
  p.rejected = std::move(rejected);
  p.margin = margin;
  p.annotator = std::move(annotator);
  unify_turns(p);
  return p;
}

/// Same content for the pair's purposes: equal after lifting text into chat.
bool same_completion(const Turns& a, const Turns& b) {
  if (a.is_chat() || b.is_chat()) return a.as_messages("assistant") == b.as_messages("assistant");
  return a.text == b.text;
}

std::vector<PreferencePair> parse_pairs(const nlohmann::json& row, const ImportOptions& o, const std::string& file,
                                        int64_t line) {
  Line l(row, file, line);
  Turns prompt = l.turns({"prompt"});
  Turns chosen = l.turns({"chosen"});
  Turns rejected = l.turns({"rejected"});
  if (same_completion(chosen, rejected)) l.fail("rejected", "is identical to 'chosen'");
  return {make_pair(std::move(prompt), std::move(chosen), std::move(rejected), l.margin(), l.annotator(o))};
}

std::vector<PreferencePair> parse_ranked(const nlohmann::json& row, const ImportOptions& o, const std::string& file,
                                         int64_t line) {
  Line l(row, file, line);
  Turns prompt = l.turns({"prompt"});
  const auto& completions = l.list({"completions"}, 2);
  const auto& ranking = l.list({"ranking"}, 2);
  if (ranking.size() != completions.size())
    l.fail("ranking", fmt::format("has {} entries but there are {} completions", ranking.size(), completions.size()));
  std::vector<Turns> texts;
  std::vector<int64_t> ranks;
  for (std::size_t i = 0; i < completions.size(); ++i) {
    texts.push_back(l.turns(completions[i], fmt::format("completions[{}]", i)));
    const auto& r = ranking[i];
    const std::string at = fmt::format("ranking[{}]", i);
    if (!r.is_number()) l.fail(at, fmt::format("must be a whole number >= 1 (1 = best), got {}", json_type_name(r)));
    const double x = r.get<double>();
    if (!std::isfinite(x) || x < 1 || x != std::floor(x) || x > 1e9)
      l.fail(at, fmt::format("is {}: must be a whole number >= 1 (1 = best)", r.dump()));
    ranks.push_back(static_cast<int64_t>(x));
  }
  const std::string annotator = l.annotator(o);
  std::vector<PreferencePair> out;
  for (std::size_t i = 0; i < texts.size(); ++i)
    for (std::size_t j = 0; j < texts.size(); ++j) {
      if (ranks[i] >= ranks[j]) continue;
      if (same_completion(texts[i], texts[j]))
        l.fail(fmt::format("completions[{}]", j),
               fmt::format("is identical to completions[{}] but ranked differently", i));
      out.push_back(make_pair(prompt, texts[i], texts[j], std::nullopt, annotator));
    }
  return out;
}

std::vector<PreferencePair> parse_scores(const nlohmann::json& row, const ImportOptions& o, const std::string& file,
                                         int64_t line) {
  Line l(row, file, line);
  Turns prompt = l.turns({"prompt", "instruction"});
  const auto& completions = l.list({"completions"}, 1);
  std::vector<Turns> texts;
  std::vector<double> scores;
  if (completions[0].is_object()) {
    for (std::size_t i = 0; i < completions.size(); ++i) {
      const std::string at = fmt::format("completions[{}]", i);
      const auto& c = completions[i];
      if (!c.is_object()) l.fail(at, fmt::format("must be an object like completions[0], got {}", json_type_name(c)));
      const nlohmann::json* text = nullptr;
      std::string text_key;
      for (const char* k : {"text", "response", "completion"})
        if (auto it = c.find(k); !text && it != c.end() && !it->is_null()) text = &*it, text_key = k;
      if (!text) l.fail(at + ".text", "is missing (or 'response', 'completion')");
      texts.push_back(l.turns(*text, at + "." + text_key));
      const nlohmann::json* score = nullptr;
      std::string score_key;
      for (const char* k : {"score", "overall_score"})
        if (auto it = c.find(k); !score && it != c.end() && !it->is_null()) score = &*it, score_key = k;
      if (!score) l.fail(at + ".score", "is missing (or 'overall_score')");
      scores.push_back(*l.number(at + "." + score_key, *score));
    }
  } else {
    const auto& list = l.list({"scores"}, 1);
    if (list.size() != completions.size())
      l.fail("scores", fmt::format("has {} entries but there are {} completions", list.size(), completions.size()));
    for (std::size_t i = 0; i < completions.size(); ++i) {
      texts.push_back(l.turns(completions[i], fmt::format("completions[{}]", i)));
      scores.push_back(*l.number(fmt::format("scores[{}]", i), list[i]));
    }
  }
  const std::string annotator = l.annotator(o);
  std::vector<PreferencePair> out;
  for (std::size_t i = 0; i < texts.size(); ++i)
    for (std::size_t j = 0; j < texts.size(); ++j) {
      const double gap = scores[i] - scores[j];
      if (i == j || gap < o.score_gap) continue;
      if (same_completion(texts[i], texts[j]))
        l.fail(fmt::format("completions[{}]", j),
               fmt::format("is identical to completions[{}] but scored differently", i));
      out.push_back(make_pair(prompt, texts[i], texts[j],
                              o.margin_from_scores ? std::optional<double>(gap) : std::nullopt, annotator));
    }
  return out;
}

std::vector<PreferencePair> parse_hh(const nlohmann::json& row, const ImportOptions& o, const std::string& file,
                                     int64_t line) {
  Line l(row, file, line);
  auto text = [&](const char* key) {
    auto [k, v] = l.required({key});
    if (!v->is_string()) l.fail(k, fmt::format("must be a string (a transcript), got {}", json_type_name(*v)));
    std::string s = v->get<std::string>();
    if (is_blank(s)) l.fail(k, "is empty");
    return s;
  };
  const std::string chosen = text("chosen");
  const std::string rejected = text("rejected");
  if (chosen == rejected) l.fail("rejected", "is identical to 'chosen'");
  std::size_t common = 0;
  while (common < chosen.size() && common < rejected.size() && chosen[common] == rejected[common]) ++common;
  const std::string marker = kAssistantTurn;
  const std::size_t split = common < marker.size() ? std::string::npos : chosen.rfind(marker, common - marker.size());
  if (split == std::string::npos)
    l.fail("chosen",
           "and 'rejected' share no prefix ending in \"\\n\\nAssistant:\" (expected Anthropic HH transcripts)");
  const std::size_t cut = split + marker.size();
  if (chosen.find(kHumanTurn) == std::string::npos)
    l.fail("chosen", "has no \"\\n\\nHuman:\" turn (expected Anthropic HH transcripts)");
  Turns prompt, c, r;
  prompt.text = chosen.substr(0, cut);
  c.text = chosen.substr(cut);
  r.text = rejected.substr(cut);
  if (is_blank(c.text)) l.fail("chosen", "has an empty reply after the shared prompt");
  if (is_blank(r.text)) l.fail("rejected", "has an empty reply after the shared prompt");
  return {make_pair(std::move(prompt), std::move(c), std::move(r), l.margin(), l.annotator(o))};
}

}  // namespace

void register_builtin_preference_formats(PreferenceFormatRegistry& registry) {
  registry.add("pairs", {"{\"prompt\", \"chosen\", \"rejected\", \"margin\"?} (TRL, DeepSpeed-Chat)", parse_pairs});
  registry.add("ranked",
               {"{\"prompt\", \"completions\": [...], \"ranking\": [rank per completion, 1 = best]}", parse_ranked});
  registry.add("scores",
               {"{\"prompt\", \"completions\": [{\"text\", \"score\"}...]} (UltraFeedback-style)", parse_scores});
  registry.add("hh", {"{\"chosen\", \"rejected\"} full transcripts with a shared prefix (Anthropic HH)", parse_hh});
}

PreferenceFormatRegistry builtin_preference_formats() {
  PreferenceFormatRegistry r("preference format");
  register_builtin_preference_formats(r);
  return r;
}

}  // namespace rlft::data
