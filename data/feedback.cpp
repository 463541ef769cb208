#include "data/feedback.h"

#include <sqlite3.h>

#include <cmath>

#include "core/error.h"
#include "data/feedback_hash.h"
#include "data/jsonl.h"

namespace rlft::data {
namespace {

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
}

/// Column text for a part: the text itself, or the chat list as JSON.
std::string column_text(const Turns& t) {
  return t.is_chat() ? dump(t.to_json()) : t.text;
}

Turns from_column(const std::string& text, bool chat) {
  Turns t;
  if (!chat) {
    t.text = text;
    return t;
  }
  for (const auto& m : nlohmann::json::parse(text)) t.messages.push_back({m.at("role"), m.at("content")});
  return t;
}

constexpr const char* kPairColumns =
    "id, prompt, chosen, rejected, chat, margin, annotator, source_file, source_line, source_format, imported_at, "
    "import_id, content_hash";

PreferencePair read_pair(const sqlite::Statement& q) {
  PreferencePair p;
  const bool chat = q.column_int(4) != 0;
  p.id = q.column_int(0);
  p.prompt = from_column(q.column_text(1), chat);
  p.chosen = from_column(q.column_text(2), chat);
  p.rejected = from_column(q.column_text(3), chat);
  if (!q.column_is_null(5)) p.margin = q.column_double(5);
  p.annotator = q.column_is_null(6) ? "" : q.column_text(6);
  p.source_file = q.column_text(7);
  p.source_line = q.column_int(8);
  p.source_format = q.column_text(9);
  p.imported_at = q.column_double(10);
  p.import_id = q.column_int(11);
  p.content_hash = q.column_text(12);
  return p;
}

std::vector<std::pair<std::string, int64_t>> counts(sqlite::Database& db, const std::string& sql) {
  sqlite::Statement q(db, sql);
  std::vector<std::pair<std::string, int64_t>> out;
  while (q.step()) out.emplace_back(q.column_is_null(0) ? "" : q.column_text(0), q.column_int(1));
  return out;
}

}  // namespace

nlohmann::json Turns::to_json() const {
  if (!is_chat()) return text;
  nlohmann::json list = nlohmann::json::array();
  for (const auto& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
  return list;
}

std::vector<ChatMessage> Turns::as_messages(const std::string& role) const {
  if (is_chat()) return messages;
  return {{role, text}};
}

void unify_turns(PreferencePair& p) {
  if (!p.prompt.is_chat() && !p.chosen.is_chat() && !p.rejected.is_chat()) return;
  p.prompt.messages = p.prompt.as_messages("user");
  p.chosen.messages = p.chosen.as_messages("assistant");
  p.rejected.messages = p.rejected.as_messages("assistant");
  p.prompt.text.clear();
  p.chosen.text.clear();
  p.rejected.text.clear();
}

std::string pair_content_hash(const Turns& prompt, const Turns& chosen, const Turns& rejected) {
  return sha256_hex(dump(nlohmann::json::array({prompt.to_json(), chosen.to_json(), rejected.to_json()})));
}

int64_t FeedbackStore::begin_import(const std::string& source_file, const std::string& format) {
  sqlite::Statement q(store_.db(), "INSERT INTO feedback_imports (source_file, format, started_at) VALUES (?, ?, ?)");
  q.bind(1, source_file).bind(2, format).bind(3, unix_now()).run();
  return store_.db().last_insert_rowid();
}

void FeedbackStore::finish_import(int64_t id, int64_t n_lines, int64_t n_pairs, int64_t n_duplicates,
                                  int64_t n_invalid) {
  sqlite::Statement q(
      store_.db(),
      "UPDATE feedback_imports SET n_lines = ?, n_pairs = ?, n_duplicates = ?, n_invalid = ? WHERE id = ?");
  q.bind(1, n_lines).bind(2, n_pairs).bind(3, n_duplicates).bind(4, n_invalid).bind(5, id).run();
}

bool FeedbackStore::add_pair(PreferencePair p) {
  unify_turns(p);
  RLFT_CHECK(!(p.chosen == p.rejected), "a preference pair needs chosen and rejected to differ");
  RLFT_CHECK(!p.margin || (std::isfinite(*p.margin) && *p.margin >= 0), "a pair's margin must be finite and >= 0");
  p.content_hash = pair_content_hash(p.prompt, p.chosen, p.rejected);
  const std::string reverse = pair_content_hash(p.prompt, p.rejected, p.chosen);
  sqlite::Statement q(store_.db(),
                      "INSERT INTO feedback_pairs (import_id, prompt, chosen, rejected, chat, margin, source_file, "
                      "source_line, source_format, annotator, imported_at, content_hash, reverse_hash) "
                      "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (content_hash) DO NOTHING");
  q.bind(1, p.import_id).bind(2, column_text(p.prompt)).bind(3, column_text(p.chosen)).bind(4, column_text(p.rejected));
  q.bind(5, p.prompt.is_chat() ? 1 : 0);
  if (p.margin)
    q.bind(6, *p.margin);
  else
    q.bind_null(6);
  q.bind(7, p.source_file).bind(8, p.source_line).bind(9, p.source_format);
  if (p.annotator.empty())
    q.bind_null(10);
  else
    q.bind(10, p.annotator);
  q.bind(11, p.imported_at > 0 ? p.imported_at : unix_now()).bind(12, p.content_hash).bind(13, reverse);
  q.run();
  return sqlite3_changes(store_.db().handle()) > 0;
}

void FeedbackStore::for_each_pair(const PairFilter& f, const std::function<void(const PreferencePair&)>& fn) {
  sqlite::Statement q(store_.db(), fmt::format("SELECT {} FROM feedback_pairs WHERE (?1 = '' OR source_file = ?1) "
                                               "AND (?2 = '' OR annotator = ?2) ORDER BY id LIMIT ?3",
                                               kPairColumns));
  q.bind(1, f.source_file).bind(2, f.annotator).bind(3, f.limit);
  while (q.step()) fn(read_pair(q));
}

std::vector<PreferencePair> FeedbackStore::pairs(const PairFilter& filter) {
  std::vector<PreferencePair> out;
  for_each_pair(filter, [&](const PreferencePair& p) { out.push_back(p); });
  return out;
}

int64_t FeedbackStore::add_label(FeedbackLabel l) {
  RLFT_CHECK(!is_blank(l.annotator), "a label needs an annotator");
  RLFT_CHECK(l.choice == "chosen" || l.choice == "rejected" || l.choice == "tie" || l.choice == "both_bad",
             "a label's choice is '{}': must be chosen, rejected, tie or both_bad", l.choice);
  const bool on_pair = l.pair_id.has_value();
  const bool on_rollouts = l.rollout_a.has_value() || l.rollout_b.has_value();
  RLFT_CHECK(on_pair != on_rollouts, "a label is on a pair or on two rollouts, not {}", on_pair ? "both" : "neither");
  if (on_rollouts)
    RLFT_CHECK(l.rollout_a && l.rollout_b && *l.rollout_a != *l.rollout_b,
               "a label on rollouts needs two different ids");
  auto exists = [&](const char* table, int64_t id) {
    sqlite::Statement q(store_.db(), fmt::format("SELECT 1 FROM {} WHERE id = ?", table));
    q.bind(1, id);
    return q.step();
  };
  if (on_pair) RLFT_CHECK(exists("feedback_pairs", *l.pair_id), "no preference pair with id {}", *l.pair_id);
  if (on_rollouts) {
    RLFT_CHECK(exists("rollouts", *l.rollout_a), "no rollout with id {}", *l.rollout_a);
    RLFT_CHECK(exists("rollouts", *l.rollout_b), "no rollout with id {}", *l.rollout_b);
  }
  sqlite::Statement q(
      store_.db(),
      "INSERT INTO feedback_labels (annotator, pair_id, rollout_a, rollout_b, choice, reason, created_at) "
      "VALUES (?,?,?,?,?,?,?)");
  q.bind(1, l.annotator);
  if (on_pair)
    q.bind(2, *l.pair_id).bind_null(3).bind_null(4);
  else
    q.bind_null(2).bind(3, *l.rollout_a).bind(4, *l.rollout_b);
  q.bind(5, l.choice).bind(6, l.reason).bind(7, l.created_at > 0 ? l.created_at : unix_now()).run();
  return store_.db().last_insert_rowid();
}

std::vector<FeedbackLabel> FeedbackStore::labels(std::optional<int64_t> pair_id) {
  sqlite::Statement q(store_.db(),
                      "SELECT id, annotator, pair_id, rollout_a, rollout_b, choice, reason, created_at FROM "
                      "feedback_labels WHERE (?1 IS NULL OR pair_id = ?1) ORDER BY id");
  if (pair_id)
    q.bind(1, *pair_id);
  else
    q.bind_null(1);
  std::vector<FeedbackLabel> out;
  while (q.step()) {
    FeedbackLabel l;
    l.id = q.column_int(0);
    l.annotator = q.column_text(1);
    if (!q.column_is_null(2)) l.pair_id = q.column_int(2);
    if (!q.column_is_null(3)) l.rollout_a = q.column_int(3);
    if (!q.column_is_null(4)) l.rollout_b = q.column_int(4);
    l.choice = q.column_text(5);
    l.reason = q.column_text(6);
    l.created_at = q.column_double(7);
    out.push_back(std::move(l));
  }
  return out;
}

FeedbackStats FeedbackStore::stats() {
  auto& db = store_.db();
  FeedbackStats s;
  {
    sqlite::Statement q(
        db,
        "SELECT count(*), coalesce(sum(chat), 0), count(margin), min(margin), avg(margin), max(margin), "
        "coalesce(avg(length(prompt)), 0), coalesce(avg(length(chosen)), 0), "
        "coalesce(avg(length(rejected)), 0) FROM feedback_pairs");
    q.step();
    s.n_pairs = q.column_int(0);
    s.n_chat = q.column_int(1);
    s.n_with_margin = q.column_int(2);
    if (s.n_with_margin > 0) {
      s.margin_min = q.column_double(3);
      s.margin_mean = q.column_double(4);
      s.margin_max = q.column_double(5);
    }
    s.mean_prompt_chars = q.column_double(6);
    s.mean_chosen_chars = q.column_double(7);
    s.mean_rejected_chars = q.column_double(8);
  }
  {
    sqlite::Statement q(db,
                        "SELECT count(*) FROM feedback_pairs p WHERE EXISTS "
                        "(SELECT 1 FROM feedback_pairs r WHERE r.content_hash = p.reverse_hash)");
    q.step();
    s.n_conflicting = q.column_int(0);
  }
  {
    sqlite::Statement q(db, "SELECT count(*) FROM feedback_imports");
    q.step();
    s.n_imports = q.column_int(0);
  }
  {
    sqlite::Statement q(db,
                        "SELECT source_file, group_concat(DISTINCT source_format), count(*) FROM feedback_pairs "
                        "GROUP BY source_file ORDER BY count(*) DESC, source_file");
    while (q.step()) s.sources.push_back({q.column_text(0), q.column_text(1), q.column_int(2)});
  }
  s.annotators = counts(db,
                        "SELECT annotator, count(*) FROM feedback_pairs GROUP BY annotator "
                        "ORDER BY count(*) DESC, annotator");
  s.label_choices = counts(db, "SELECT choice, count(*) FROM feedback_labels GROUP BY choice ORDER BY choice");
  s.label_annotators = counts(db,
                              "SELECT annotator, count(*) FROM feedback_labels GROUP BY annotator "
                              "ORDER BY count(*) DESC, annotator");
  for (const auto& kv : s.label_choices) s.n_labels += kv.second;
  return s;
}

}  // namespace rlft::data
