#include "app/serve/labeling.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <map>

#include "core/error.h"
#include "data/feedback_hash.h"

namespace rlft::app::serve {
namespace {

// Consecutive completions (2k, 2k+1) of one prompt group; every rollout is in one pair.
constexpr const char* kRunPairs =
    "FROM rollouts a JOIN rollouts b ON b.run_id = a.run_id AND b.step = a.step "
    "AND b.prompt_index = a.prompt_index AND b.sample_index = a.sample_index + 1 "
    "WHERE a.run_id = ?1 AND (?2 IS NULL OR a.step = ?2) AND a.sample_index % 2 = 0 ";

void bind_run(sqlite::Statement& q, const LabelSource& s) {
  q.bind(1, s.run_id);
  if (s.step)
    q.bind(2, *s.step);
  else
    q.bind_null(2);
}

/// A chat stored as JSON becomes "role: content" paragraphs; text stays text.
std::string pair_text(const std::string& stored, bool chat) {
  if (!chat) return stored;
  const auto j = nlohmann::json::parse(stored, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return stored;
  std::string out;
  for (const auto& m : j) {
    if (!out.empty()) out += "\n\n";
    out += m.value("role", std::string("?")) + ": " + m.value("content", std::string());
  }
  return out;
}

/// Which side the pair's chosen completion is shown on: drawn from (annotator, pair) so it
/// is stable across reloads and differs between pairs.
bool pair_swapped(const std::string& annotator, int64_t pair_id) {
  const std::string h = data::sha256_hex(fmt::format("{}\n{}", annotator, pair_id));
  return (std::stoi(h.substr(0, 2), nullptr, 16) & 1) != 0;
}

std::optional<Comparison> load_rollouts(data::Store& store, int64_t a, int64_t b) {
  sqlite::Statement q(store.db(),
                      "SELECT a.prompt, a.completion, b.completion, r.name, a.step, a.prompt_index FROM rollouts a "
                      "JOIN rollouts b ON b.id = ?2 JOIN runs r ON r.id = a.run_id WHERE a.id = ?1");
  q.bind(1, a).bind(2, b);
  if (!q.step()) return std::nullopt;
  Comparison c;
  c.rollout_a = a;
  c.rollout_b = b;
  c.prompt = q.column_text(0);
  c.left = q.column_text(1);
  c.right = q.column_text(2);
  c.context = fmt::format("run {} · step {} · prompt {}", q.column_text(3), q.column_int(4), q.column_int(5));
  return c;
}

// A chat pair as `tmpl` renders it: the prompt with the generation prompt, each reply as what
// rendering the conversation with it adds (all of it where the prompt renders differently).
void render_pair(const tokenizer::ChatTemplate& tmpl, const std::string& prompt, const std::string& chosen,
                 const std::string& rejected, std::string& prompt_out, std::string& chosen_out,
                 std::string& rejected_out) {
  const auto messages = nlohmann::ordered_json::parse(prompt);
  prompt_out = tmpl.render(messages, true);
  auto reply = [&](const std::string& stored) {
    auto conversation = messages;
    for (const auto& m : nlohmann::ordered_json::parse(stored)) conversation.push_back(m);
    const std::string full = tmpl.render(conversation, false);
    return full.compare(0, prompt_out.size(), prompt_out) == 0 ? full.substr(prompt_out.size()) : full;
  };
  chosen_out = reply(chosen);
  rejected_out = reply(rejected);
}

std::optional<Comparison> load_pair(data::Store& store, int64_t pair_id, const std::string& annotator,
                                    const tokenizer::ChatTemplate* chat_template) {
  sqlite::Statement q(
      store.db(), "SELECT prompt, chosen, rejected, chat, source_file, source_line FROM feedback_pairs WHERE id = ?");
  q.bind(1, pair_id);
  if (!q.step()) return std::nullopt;
  const bool chat = q.column_int(3) != 0;
  Comparison c;
  c.pair_id = pair_id;
  c.swapped = pair_swapped(annotator, pair_id);
  c.prompt = pair_text(q.column_text(0), chat);
  std::string chosen = pair_text(q.column_text(1), chat), rejected = pair_text(q.column_text(2), chat);
  c.context = fmt::format("pair {} · {}:{}", pair_id, q.column_text(4), q.column_int(5));
  if (chat && chat_template != nullptr) {
    try {
      render_pair(*chat_template, q.column_text(0), q.column_text(1), q.column_text(2), c.prompt, chosen, rejected);
    } catch (const std::exception& e) {  // a template's refusal, or a stored chat it cannot take
      c.prompt = pair_text(q.column_text(0), chat);
      chosen = pair_text(q.column_text(1), chat), rejected = pair_text(q.column_text(2), chat);
      c.context += fmt::format(" · shown without the chat template: {}", e.what());
    }
  }
  c.left = c.swapped ? rejected : chosen;
  c.right = c.swapped ? chosen : rejected;
  return c;
}

}  // namespace

LabelSource LabelSource::parse(const std::string& text) {
  LabelSource s;
  if (text == "pairs") return s;
  s.kind = Kind::kRun;
  long long run = 0, step = 0;
  int used = 0;
  if (std::sscanf(text.c_str(), "run:%lld:%lld%n", &run, &step, &used) == 2 && used == static_cast<int>(text.size())) {
    s.run_id = run;
    s.step = step;
    return s;
  }
  if (std::sscanf(text.c_str(), "run:%lld%n", &run, &used) == 1 && used == static_cast<int>(text.size())) {
    s.run_id = run;
    return s;
  }
  throw UsageError(fmt::format("label source '{}': expected 'pairs', 'run:ID' or 'run:ID:STEP'", text));
}

std::string LabelSource::to_string() const {
  if (kind == Kind::kPairs) return "pairs";
  return step ? fmt::format("run:{}:{}", run_id, *step) : fmt::format("run:{}", run_id);
}

std::optional<Comparison> next_comparison(data::Store& store, const LabelSource& source, const std::string& annotator,
                                          const tokenizer::ChatTemplate* chat_template) {
  if (source.kind == LabelSource::Kind::kPairs) {
    sqlite::Statement q(store.db(),
                        "SELECT p.id FROM feedback_pairs p WHERE NOT EXISTS (SELECT 1 FROM feedback_labels l "
                        "WHERE l.pair_id = p.id AND l.annotator = ?) ORDER BY p.id LIMIT 1");
    q.bind(1, annotator);
    if (!q.step()) return std::nullopt;
    return load_pair(store, q.column_int(0), annotator, chat_template);
  }
  sqlite::Statement q(store.db(), std::string("SELECT a.id, b.id ") + kRunPairs +
                                      "AND NOT EXISTS (SELECT 1 FROM feedback_labels l WHERE l.annotator = ?3 "
                                      "AND l.rollout_a = a.id AND l.rollout_b = b.id) "
                                      "ORDER BY a.step, a.prompt_index, a.sample_index LIMIT 1");
  bind_run(q, source);
  q.bind(3, annotator);
  if (!q.step()) return std::nullopt;
  return load_rollouts(store, q.column_int(0), q.column_int(1));
}

std::optional<Comparison> find_comparison(data::Store& store, const LabelSource& source, const std::string& annotator,
                                          std::optional<int64_t> pair_id, int64_t rollout_a, int64_t rollout_b,
                                          const tokenizer::ChatTemplate* chat_template) {
  if (source.kind == LabelSource::Kind::kPairs) {
    if (!pair_id) return std::nullopt;
    return load_pair(store, *pair_id, annotator, chat_template);
  }
  sqlite::Statement q(store.db(), std::string("SELECT 1 ") + kRunPairs + "AND a.id = ?3 AND b.id = ?4");
  bind_run(q, source);
  q.bind(3, rollout_a).bind(4, rollout_b);
  if (!q.step()) return std::nullopt;
  return load_rollouts(store, rollout_a, rollout_b);
}

SourceProgress source_progress(data::Store& store, const LabelSource& source, const std::string& annotator) {
  SourceProgress p;
  if (source.kind == LabelSource::Kind::kPairs) {
    sqlite::Statement q(store.db(),
                        "SELECT (SELECT count(*) FROM feedback_pairs), (SELECT count(DISTINCT pair_id) FROM "
                        "feedback_labels WHERE annotator = ? AND pair_id IS NOT NULL)");
    q.bind(1, annotator);
    q.step();
    p.n_total = q.column_int(0);
    p.n_done = q.column_int(1);
    return p;
  }
  sqlite::Statement q(store.db(), std::string("SELECT count(*), count(DISTINCT CASE WHEN EXISTS (SELECT 1 FROM "
                                              "feedback_labels l WHERE l.annotator = ?3 AND l.rollout_a = a.id AND "
                                              "l.rollout_b = b.id) THEN a.id END) ") +
                                      kRunPairs);
  bind_run(q, source);
  q.bind(3, annotator);
  q.step();
  p.n_total = q.column_int(0);
  p.n_done = q.column_int(1);
  return p;
}

std::string store_choice(const Comparison& c, const std::string& shown) {
  if (shown == "tie" || shown == "both_bad") return shown;
  RLFT_CHECK(shown == "a" || shown == "b", "choice '{}': must be a, b, tie or both_bad", shown);
  const bool left_better = shown == "a";
  // rollouts: a is on the left; pairs: chosen is on the left unless swapped.
  return (left_better != c.swapped) ? "chosen" : "rejected";
}

std::vector<AnnotatorProgress> annotator_progress(data::Store& store) {
  sqlite::Statement q(
      store.db(),
      "SELECT annotator, count(*), sum(choice = 'chosen'), sum(choice = 'rejected'), sum(choice = 'tie'), "
      "sum(choice = 'both_bad'), max(created_at) FROM feedback_labels GROUP BY annotator ORDER BY annotator");
  std::vector<AnnotatorProgress> out;
  while (q.step()) {
    out.push_back({q.column_text(0), q.column_int(1), q.column_int(2), q.column_int(3), q.column_int(4),
                   q.column_int(5), q.column_double(6)});
  }
  return out;
}

Agreement label_agreement(data::Store& store) {
  // Newest label per (comparison, annotator), ordered so that one pass groups comparisons.
  sqlite::Statement q(
      store.db(),
      "SELECT coalesce('p' || pair_id, 'r' || rollout_a || '-' || rollout_b) AS target, annotator, choice "
      "FROM feedback_labels l WHERE id = (SELECT max(id) FROM feedback_labels m WHERE m.annotator = "
      "l.annotator AND m.pair_id IS l.pair_id AND m.rollout_a IS l.rollout_a AND m.rollout_b IS "
      "l.rollout_b) ORDER BY target");
  Agreement a;
  std::string target;
  std::vector<std::string> choices;
  auto flush = [&] {
    if (choices.size() < 2) return;
    ++a.n_shared;
    for (std::size_t i = 0; i < choices.size(); ++i)
      for (std::size_t j = i + 1; j < choices.size(); ++j) {
        ++a.n_annotator_pairs;
        if (choices[i] == choices[j]) ++a.n_agreeing;
      }
  };
  while (q.step()) {
    const std::string t = q.column_text(0);
    if (t != target) {
      flush();
      target = t;
      choices.clear();
    }
    choices.push_back(q.column_text(2));
  }
  flush();
  return a;
}

}  // namespace rlft::app::serve
