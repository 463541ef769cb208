#include "data/store.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include <chrono>

#include "core/error.h"

namespace rlft::data {
namespace {

// Migration i takes the schema from version i to i+1. Append; never edit a released step.
const char* const kMigrations[] = {
    // 0 → 1: runs, metrics, rollouts, checkpoints.
    R"sql(
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  config TEXT NOT NULL,
  config_hash TEXT NOT NULL,
  git_revision TEXT NOT NULL,
  started_at REAL NOT NULL,
  ended_at REAL,
  error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE metrics (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  step INTEGER NOT NULL,
  value REAL NOT NULL,
  time REAL NOT NULL,
  PRIMARY KEY (run_id, name, step)
) WITHOUT ROWID;
CREATE TABLE rollouts (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  prompt_index INTEGER NOT NULL,
  sample_index INTEGER NOT NULL,
  prompt TEXT NOT NULL,
  completion TEXT NOT NULL,
  reward REAL NOT NULL,
  reward_parts TEXT NOT NULL,
  advantage REAL NOT NULL,
  finish_reason TEXT NOT NULL,
  policy_version INTEGER NOT NULL
);
CREATE INDEX rollouts_by_step ON rollouts (run_id, step);
CREATE TABLE checkpoints (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  path TEXT NOT NULL,
  time REAL NOT NULL,
  PRIMARY KEY (run_id, step)
);
)sql",
    // 1 → 2: the feedback store (data/feedback.h): imports, preference pairs, labels.
    R"sql(
CREATE TABLE feedback_imports (
  id INTEGER PRIMARY KEY,
  source_file TEXT NOT NULL,
  format TEXT NOT NULL,
  started_at REAL NOT NULL,
  n_lines INTEGER NOT NULL DEFAULT 0,
  n_pairs INTEGER NOT NULL DEFAULT 0,
  n_duplicates INTEGER NOT NULL DEFAULT 0,
  n_invalid INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE feedback_pairs (
  id INTEGER PRIMARY KEY,
  import_id INTEGER REFERENCES feedback_imports(id) ON DELETE SET NULL,
  prompt TEXT NOT NULL,
  chosen TEXT NOT NULL,
  rejected TEXT NOT NULL,
  chat INTEGER NOT NULL DEFAULT 0,
  margin REAL,
  source_file TEXT NOT NULL,
  source_line INTEGER NOT NULL,
  source_format TEXT NOT NULL,
  annotator TEXT,
  imported_at REAL NOT NULL,
  content_hash TEXT NOT NULL UNIQUE,
  reverse_hash TEXT NOT NULL
);
CREATE INDEX feedback_pairs_by_reverse ON feedback_pairs (reverse_hash);
CREATE INDEX feedback_pairs_by_source ON feedback_pairs (source_file);
CREATE TABLE feedback_labels (
  id INTEGER PRIMARY KEY,
  annotator TEXT NOT NULL,
  pair_id INTEGER REFERENCES feedback_pairs(id) ON DELETE CASCADE,
  rollout_a INTEGER REFERENCES rollouts(id) ON DELETE CASCADE,
  rollout_b INTEGER REFERENCES rollouts(id) ON DELETE CASCADE,
  choice TEXT NOT NULL CHECK (choice IN ('chosen', 'rejected', 'tie', 'both_bad')),
  reason TEXT NOT NULL DEFAULT '',
  created_at REAL NOT NULL,
  CHECK ((pair_id IS NOT NULL AND rollout_a IS NULL AND rollout_b IS NULL) OR
         (pair_id IS NULL AND rollout_a IS NOT NULL AND rollout_b IS NOT NULL AND rollout_a <> rollout_b))
);
CREATE INDEX feedback_labels_by_pair ON feedback_labels (pair_id);
CREATE INDEX feedback_labels_by_annotator ON feedback_labels (annotator);
)sql",
    // 2 → 3: annotators' sign-in tokens for `rlft serve` (app/serve/tokens.h), SHA-256 only.
    R"sql(
CREATE TABLE serve_tokens (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  token_hash TEXT NOT NULL UNIQUE,
  created_at REAL NOT NULL,
  revoked_at REAL
);
)sql",
};
constexpr int kSchemaVersion = static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));

int user_version(sqlite::Database& db) {
  sqlite::Statement q(db, "PRAGMA user_version");
  RLFT_CHECK(q.step(), "{}: cannot read the schema version", db.path());
  return static_cast<int>(q.column_int(0));
}

RunRecord read_run(const sqlite::Statement& q) {
  RunRecord r;
  r.id = q.column_int(0);
  r.name = q.column_text(1);
  r.kind = q.column_text(2);
  r.status = q.column_text(3);
  r.config = q.column_text(4);
  r.config_hash = q.column_text(5);
  r.git_revision = q.column_text(6);
  r.started_at = q.column_double(7);
  if (!q.column_is_null(8)) r.ended_at = q.column_double(8);
  r.error = q.column_text(9);
  return r;
}

constexpr const char* kRunColumns =
    "id, name, kind, status, config, config_hash, git_revision, started_at, ended_at, error";

}  // namespace

int store_schema_version() {
  return kSchemaVersion;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Store Store::open(const std::string& path, bool create) {
  sqlite::Database db(path, create ? sqlite::OpenMode::kCreate : sqlite::OpenMode::kExisting);
  const int version = user_version(db);
  RLFT_CHECK(version <= kSchemaVersion,
             "{} was written by a newer rlft (store schema {}, this build knows up to {}): upgrade rlft to open it",
             path, version, kSchemaVersion);
  if (version == 0) {
    sqlite::Statement tables(db, "SELECT count(*) FROM sqlite_master");
    tables.step();
    RLFT_CHECK(tables.column_int(0) == 0, "{} is an SQLite database but not an rlft store (it has other tables)", path);
  }
  if (version < kSchemaVersion) {
    db.exec("PRAGMA journal_mode=WAL");
    sqlite::Transaction tx(db);
    const int v = user_version(db);  // re-read under the write lock: another process may have migrated
    for (int i = v; i < kSchemaVersion; ++i) db.exec(kMigrations[i]);
    if (v < kSchemaVersion) db.exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion));
    tx.commit();
  }

  db.exec("PRAGMA foreign_keys=ON");
  db.exec("PRAGMA synchronous=NORMAL");
  return Store(std::move(db));
}

int64_t Store::create_run(const RunRecord& run) {
  RLFT_CHECK(!find_run(run.name), "{}: a run named '{}' exists already (choose another run.name, or --resume it)",
             path(), run.name);
  sqlite::Statement q(db_,
                      "INSERT INTO runs (name, kind, status, config, config_hash, git_revision, started_at) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)");
  q.bind(1, run.name).bind(2, run.kind).bind(3, run.status.empty() ? "running" : run.status).bind(4, run.config);
  q.bind(5, run.config_hash).bind(6, run.git_revision).bind(7, run.started_at > 0 ? run.started_at : unix_now());
  q.run();
  return db_.last_insert_rowid();
}

std::optional<RunRecord> Store::find_run(const std::string& name) {
  sqlite::Statement q(db_, fmt::format("SELECT {} FROM runs WHERE name = ?", kRunColumns));
  q.bind(1, name);
  if (!q.step()) return std::nullopt;
  return read_run(q);
}

std::vector<RunRecord> Store::list_runs() {
  sqlite::Statement q(db_, fmt::format("SELECT {} FROM runs ORDER BY started_at, id", kRunColumns));
  std::vector<RunRecord> out;
  while (q.step()) out.push_back(read_run(q));
  return out;
}

void Store::finish_run(int64_t run_id, const std::string& status, const std::string& error) {
  sqlite::Statement q(db_, "UPDATE runs SET status = ?, ended_at = ?, error = ? WHERE id = ?");
  q.bind(1, status).bind(2, unix_now()).bind(3, error).bind(4, run_id).run();
}

void Store::reopen_run(int64_t run_id) {
  sqlite::Statement q(db_, "UPDATE runs SET status = 'running', ended_at = NULL, error = '' WHERE id = ?");
  q.bind(1, run_id).run();
}

void Store::log_metrics(int64_t run_id, int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  sqlite::Transaction tx(db_);
  sqlite::Statement q(db_, "INSERT OR REPLACE INTO metrics (run_id, name, step, value, time) VALUES (?, ?, ?, ?, ?)");
  const double now = unix_now();
  for (const auto& [name, value] : values) {
    if (std::isnan(value)) continue;  // SQLite has no NaN (it would store NULL); ±inf is kept
    q.bind(1, run_id).bind(2, name).bind(3, step).bind(4, value).bind(5, now).run();
  }
  tx.commit();
}

std::vector<MetricPoint> Store::last_metrics(int64_t run_id) {
  sqlite::Statement q(db_,
                      "SELECT m.step, m.name, m.value, m.time FROM metrics m "
                      "JOIN (SELECT name, max(step) AS step FROM metrics WHERE run_id = ?1 GROUP BY name) last "
                      "ON m.name = last.name AND m.step = last.step WHERE m.run_id = ?1 ORDER BY m.name");
  q.bind(1, run_id);
  std::vector<MetricPoint> out;
  while (q.step()) out.push_back({q.column_int(0), q.column_text(1), q.column_double(2), q.column_double(3)});
  return out;
}

std::vector<MetricPoint> Store::metric_series(int64_t run_id, const std::string& name) {
  sqlite::Statement q(db_, "SELECT step, name, value, time FROM metrics WHERE run_id = ? AND name = ? ORDER BY step");
  q.bind(1, run_id).bind(2, name);
  std::vector<MetricPoint> out;
  while (q.step()) out.push_back({q.column_int(0), q.column_text(1), q.column_double(2), q.column_double(3)});
  return out;
}

std::vector<std::string> Store::metric_names(int64_t run_id) {
  sqlite::Statement q(db_, "SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY name");
  q.bind(1, run_id);
  std::vector<std::string> out;
  while (q.step()) out.push_back(q.column_text(0));
  return out;
}

void Store::add_rollouts(int64_t run_id, const std::vector<RolloutRecord>& rollouts) {
  sqlite::Transaction tx(db_);
  sqlite::Statement q(db_,
                      "INSERT INTO rollouts (run_id, step, prompt_index, sample_index, prompt, completion, reward, "
                      "reward_parts, advantage, finish_reason, policy_version) VALUES (?,?,?,?,?,?,?,?,?,?,?)");
  for (const auto& r : rollouts) {
    nlohmann::json parts = nlohmann::json::object();
    for (const auto& [name, value] : r.parts) parts[name] = value;
    q.bind(1, run_id).bind(2, r.step).bind(3, r.prompt_index).bind(4, r.sample_index).bind(5, r.prompt);
    q.bind(6, r.completion)
        .bind(7, r.reward)
        .bind(8, parts.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    q.bind(9, r.advantage).bind(10, r.finish_reason).bind(11, r.policy_version).run();
  }
  tx.commit();
}

std::vector<RolloutRecord> Store::rollouts(int64_t run_id, std::optional<int64_t> step, int64_t limit) {
  sqlite::Statement q(db_,
                      "SELECT step, prompt_index, sample_index, prompt, completion, reward, reward_parts, advantage, "
                      "finish_reason, policy_version FROM rollouts WHERE run_id = ? AND (? IS NULL OR step = ?) "
                      "ORDER BY step, prompt_index, sample_index LIMIT ?");
  q.bind(1, run_id);
  if (step)
    q.bind(2, *step).bind(3, *step);
  else
    q.bind_null(2).bind_null(3);
  q.bind(4, limit);
  std::vector<RolloutRecord> out;
  while (q.step()) {
    RolloutRecord r;
    r.step = q.column_int(0);
    r.prompt_index = q.column_int(1);
    r.sample_index = q.column_int(2);
    r.prompt = q.column_text(3);
    r.completion = q.column_text(4);
    r.reward = q.column_double(5);
    const nlohmann::json parts = nlohmann::json::parse(q.column_text(6));
    for (auto it = parts.begin(); it != parts.end(); ++it) r.parts.emplace_back(it.key(), it.value().get<double>());
    r.advantage = q.column_double(7);
    r.finish_reason = q.column_text(8);
    r.policy_version = q.column_int(9);
    out.push_back(std::move(r));
  }
  return out;
}

void Store::add_checkpoint(int64_t run_id, int64_t step, const std::string& path) {
  sqlite::Statement q(db_, "INSERT OR REPLACE INTO checkpoints (run_id, step, path, time) VALUES (?, ?, ?, ?)");
  q.bind(1, run_id).bind(2, step).bind(3, path).bind(4, unix_now()).run();
}

std::vector<CheckpointRecord> Store::checkpoints(int64_t run_id) {
  sqlite::Statement q(db_, "SELECT step, path, time FROM checkpoints WHERE run_id = ? ORDER BY step");
  q.bind(1, run_id);
  std::vector<CheckpointRecord> out;
  while (q.step()) out.push_back({q.column_int(0), q.column_text(1), q.column_double(2)});
  return out;
}

std::string rollout_records_to_json(const std::vector<RolloutRecord>& records) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : records) {
    nlohmann::json parts = nlohmann::json::array();
    for (const auto& [name, v] : r.parts) parts.push_back({name, v});
    out.push_back({{"step", r.step},
                   {"prompt_index", r.prompt_index},
                   {"sample_index", r.sample_index},
                   {"prompt", r.prompt},
                   {"completion", r.completion},
                   {"reward", r.reward},
                   {"parts", parts},
                   {"advantage", r.advantage},
                   {"finish_reason", r.finish_reason},
                   {"policy_version", r.policy_version}});
  }
  // A completion can stop inside a multi-byte character: replace such bytes, never throw.
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<RolloutRecord> rollout_records_from_json(const std::string& text) {
  std::vector<RolloutRecord> out;
  try {
    for (const auto& j : nlohmann::json::parse(text)) {
      RolloutRecord r;
      r.step = j.at("step").get<int64_t>();
      r.prompt_index = j.at("prompt_index").get<int64_t>();
      r.sample_index = j.at("sample_index").get<int64_t>();
      r.prompt = j.at("prompt").get<std::string>();
      r.completion = j.at("completion").get<std::string>();
      r.reward = j.at("reward").get<double>();
      for (const auto& p : j.at("parts")) r.parts.emplace_back(p.at(0).get<std::string>(), p.at(1).get<double>());
      r.advantage = j.at("advantage").get<double>();
      r.finish_reason = j.at("finish_reason").get<std::string>();
      r.policy_version = j.at("policy_version").get<int64_t>();
      out.push_back(std::move(r));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("rollout records: not the JSON rollout_records_to_json writes: {}", e.what()));
  }
  return out;
}

}  // namespace rlft::data
