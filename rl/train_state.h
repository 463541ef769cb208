#pragma once
// Training checkpoints: OUT/checkpoints/step-000100/ holds an HF model directory (config.json,
// model.safetensors in float32, tokenizer.json — what transformers and `rlft generate` open)
// and trainer_state/ (state.json: step, data cursor, loss-scale state, counters;
// optimizer.safetensors: AdamW's moments and step counts, exactly, by parameter name). The whole directory is written
// atomically (policy/checkpoint AtomicDir): a kill at any moment leaves the previous
// checkpoint whole. The newest `keep` are kept.
//
// Every random choice of a run derives from (run.seed, step, prompt index): sampling seeds
// from the request id (= the data cursor), the data order from (data.seed, epoch). With the
// weights, moments and counters restored, a resumed run repeats the uninterrupted one
// bitwise (fp32, fixed threads).

#include <cstdint>
#include <functional>
#include <string>

#include "rl/job.h"
#include "rl/optimizer.h"

namespace rlft::rl {

struct TrainResult {
  int64_t steps = 0;         ///< steps completed (in all, resumed ones included)
  bool interrupted = false;  ///< stopped by a signal or --stop-after before the last step
  std::string final_dir;     ///< OUT/final ("" when interrupted)
  std::string checkpoint;    ///< the newest checkpoint written
};

struct TrainerState {
  int64_t step = 0;             ///< completed steps
  int64_t cursor = 0;           ///< examples consumed from the training split
  int64_t optimizer_steps = 0;  ///< optimizer steps taken (applied or skipped)
  int64_t skipped_steps = 0;    ///< steps skipped for non-finite loss or gradients
  int64_t consecutive_skips = 0;
  double loss_scale = 1.0;
  int64_t loss_scale_good_steps = 0;
  int64_t loss_scale_skipped = 0;
};

/// Writes OUT/checkpoints/step-NNNNNN atomically, records it in the store, deletes all but
/// the newest `keep`. Returns the directory. `extra` writes more files into the model
/// directory before it is committed (a reward model's head); `state_extra` into its
/// trainer_state/ (what a resume needs beyond the weights and moments: a reset KL reference,
/// DPO's reference log-probs).
using ExtraWriter = std::function<void(const std::string& dir)>;
std::string save_training_checkpoint(Job& job, const TrainerState& state, const Optimizer& optimizer, int64_t keep,
                                     const ExtraWriter& extra = {}, const ExtraWriter& state_extra = {});

/// state.json's text (with the run and config hash when given), and back (errors name `origin`).
std::string trainer_state_json(const TrainerState& state, const std::string& run = "",
                               const std::string& config_hash = "");
TrainerState trainer_state_from_json(const std::string& text, const std::string& origin);

/// Reads trainer_state/ of checkpoint `dir` (the weights were loaded by the Job) into the
/// optimizer; returns the counters.
TrainerState load_trainer_state(const std::string& dir, Optimizer& optimizer);

/// Writes the policy as an HF model directory OUT/final (with tokenizer.json). Returns it.
std::string save_final_model(Job& job, const ExtraWriter& extra = {});

/// The end of a step of a training loop (`what`: "sft", "train", "rm"): writes a checkpoint
/// when checkpoint.every says so, or when a stop was asked (SIGINT/SIGTERM, or `stop_after`
/// steps done). Returns true when the loop must end: `result` is filled and the run is
/// marked interrupted. Never stops after the last step (finish_training() follows).
/// In a multi-rank run every rank calls it: the stop is agreed over ranks (a signal on any
/// stops all at the same step) and rank 0 alone writes, the others waiting for it.
bool end_of_step(Job& job, const TrainerState& state, const Optimizer& optimizer, int64_t total, int64_t stop_after,
                 const char* what, TrainResult& result, const ExtraWriter& extra = {},
                 const ExtraWriter& state_extra = {});

/// After the last step: the last checkpoint, OUT/final (rank 0), the run marked finished.
TrainResult finish_training(Job& job, const TrainerState& state, const Optimizer& optimizer,
                            const ExtraWriter& extra = {}, const ExtraWriter& state_extra = {});

}  // namespace rlft::rl
