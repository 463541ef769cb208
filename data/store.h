#pragma once
// The run store: one SQLite file (default runs/rlft.db) that holds every run, its metrics,
// sample rollouts and checkpoints. WAL mode, so another process (`rlft runs`, `rlft serve`)
// reads while a run writes. The schema is versioned with PRAGMA user_version and moves
// forward by migrations; a file written by a newer rlft is refused, never rewritten.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/sqlite.h"

namespace rlft::data {

/// The schema version this build writes (PRAGMA user_version).
int store_schema_version();

struct RunRecord {
  int64_t id = 0;
  std::string name;
  std::string kind;    ///< "train" | "sft" | "rm" | …
  std::string status;  ///< "running" | "finished" | "failed" | "interrupted"
  std::string config;  ///< the resolved YAML the run started with
  std::string config_hash;
  std::string git_revision;
  double started_at = 0.0;  ///< unix seconds
  std::optional<double> ended_at;
  std::string error;  ///< why a failed run failed
};

struct MetricPoint {
  int64_t step = 0;
  std::string name;
  double value = 0.0;
  double time = 0.0;  ///< unix seconds when logged
};

struct RolloutRecord {
  int64_t step = 0;
  int64_t prompt_index = 0;  ///< the group within the step
  int64_t sample_index = 0;  ///< the completion within the group
  std::string prompt;
  std::string completion;
  double reward = 0.0;                                ///< the weighted total
  std::vector<std::pair<std::string, double>> parts;  ///< each reward function's score
  double advantage = 0.0;
  std::string finish_reason;  ///< "stop" | "length"
  int64_t policy_version = 0;
};

/// Rollout records as JSON text and back (records gathered from several ranks).
std::string rollout_records_to_json(const std::vector<RolloutRecord>& records);
/// Throws rlft::Error for text that rollout_records_to_json did not write.
std::vector<RolloutRecord> rollout_records_from_json(const std::string& text);

struct CheckpointRecord {
  int64_t step = 0;
  std::string path;
  double time = 0.0;
};

class Store {
 public:
  /// Opens (and with `create`, creates) the store, applying forward migrations. Throws
  /// rlft::Error naming the path for a missing file (without `create`), a missing or
  /// read-only directory, a file that is not SQLite, or a newer schema.
  static Store open(const std::string& path, bool create);

  /// Registers a new run; throws when a run of that name exists.
  int64_t create_run(const RunRecord& run);
  std::optional<RunRecord> find_run(const std::string& name);
  std::vector<RunRecord> list_runs();
  void finish_run(int64_t run_id, const std::string& status, const std::string& error = "");
  /// Marks a run running again (resume).
  void reopen_run(int64_t run_id);

  /// Writes one step's metrics in one transaction (a re-logged step replaces its values).
  /// NaN values are left out (SQLite cannot hold NaN); ±inf is stored.
  void log_metrics(int64_t run_id, int64_t step, const std::vector<std::pair<std::string, double>>& values);
  /// The newest value of every metric of a run, by name.
  std::vector<MetricPoint> last_metrics(int64_t run_id);
  /// One metric over steps, ascending.
  std::vector<MetricPoint> metric_series(int64_t run_id, const std::string& name);
  std::vector<std::string> metric_names(int64_t run_id);

  void add_rollouts(int64_t run_id, const std::vector<RolloutRecord>& rollouts);
  std::vector<RolloutRecord> rollouts(int64_t run_id, std::optional<int64_t> step = std::nullopt, int64_t limit = 1000);

  void add_checkpoint(int64_t run_id, int64_t step, const std::string& path);
  std::vector<CheckpointRecord> checkpoints(int64_t run_id);

  sqlite::Database& db() { return db_; }
  const std::string& path() const { return db_.path(); }

 private:
  explicit Store(sqlite::Database db) : db_(std::move(db)) {}
  sqlite::Database db_;
};

/// Unix time in seconds, with sub-second precision.
double unix_now();

}  // namespace rlft::data
