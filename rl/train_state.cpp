#include "rl/train_state.h"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "policy/arch/arch.h"
#include "policy/checkpoint/checkpoint.h"
#include "policy/checkpoint/file_io.h"
#include "policy/lora.h"
#include "policy/model_io.h"

namespace rlft::rl {
namespace fs = std::filesystem;

namespace {

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  RLFT_CHECK(in.good(), "cannot read {}", p.string());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The tokenizer's files of the run: tokenizer.json, and tokenizer_config.json and
// chat_template.jinja where the tokenizer came with them (transformers reads the chat
// template from either).
std::map<std::string, std::string> tokenizer_files(const Job& job) {
  std::map<std::string, std::string> files = {{"tokenizer.json", job.tokenizer_path()}};
  for (const char* name : {"tokenizer_config.json", "chat_template.jinja"})
    if (fs::exists(fs::path(job.output_dir()) / name)) files[name] = (fs::path(job.output_dir()) / name).string();
  return files;
}

void write_model_dir(Job& job, const std::string& dir) {
  if (job.model()->lora) {
    // LoRA: a PEFT adapter directory naming its base.
    policy::write_adapter(*job.model(), dir, job.adapter_base());
    for (const auto& [name, from] : tokenizer_files(job))
      fs::copy_file(from, fs::path(dir) / name, fs::copy_options::overwrite_existing);
    return;
  }
  policy::SaveModelOptions o;
  o.dtype = at::kFloat;
  o.copy_files = tokenizer_files(job);
  policy::save_model(job.model(), dir, o, policy::builtin_architectures());
}

// Before rank 0 writes the weights for everyone: every rank must hold the same ones (they
// took the same steps; a difference means nondeterminism somewhere, caught here, not later).
void check_weights_agree(Job& job) {
  if (job.dist().world_size() == 1) return;
  std::vector<std::pair<std::string, at::Tensor>> state;
  for (const auto& p : job.model()->named_parameters()) state.emplace_back(p.key(), p.value());
  for (const auto& b : job.model()->named_buffers()) state.emplace_back(b.key(), b.value());
  job.dist().check_consistent("the weights hash at this checkpoint", dist::tensors_hash(state));
}

}  // namespace

std::string save_training_checkpoint(Job& job, const TrainerState& s, const Optimizer& optimizer, int64_t keep,
                                     const ExtraWriter& extra, const ExtraWriter& state_extra) {
  const fs::path root = fs::path(job.output_dir()) / "checkpoints";
  fs::create_directories(root);
  const fs::path dest = root / fmt::format("step-{:06d}", s.step);
  {
    checkpoint::AtomicDir out(dest.string());
    write_model_dir(job, out.path());
    if (extra) extra(out.path());
    const fs::path ts = fs::path(out.path()) / "trainer_state";
    fs::create_directories(ts);
    optimizer.save_state((ts / "optimizer.safetensors").string());
    if (state_extra) state_extra(ts.string());
    // state.json last: its presence marks a complete trainer state (latest_checkpoint).
    std::ofstream(ts / "state.json") << trainer_state_json(s, job.run_name(), job.spec().config_hash) << "\n";
    out.commit();
  }
  job.store().add_checkpoint(job.run_id(), s.step, dest.string());
  // Keep the newest `keep`.
  std::vector<fs::path> all;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path().filename().string().rfind("step-", 0) == 0) all.push_back(e.path());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) fs::remove_all(all[i]);
  log::info("checkpoint: {}", dest.string());
  return dest.string();
}

std::string trainer_state_json(const TrainerState& s, const std::string& run, const std::string& config_hash) {
  nlohmann::json j = {{"format", "rlft-trainer-state-1"},
                      {"step", s.step},
                      {"cursor", s.cursor},
                      {"optimizer_steps", s.optimizer_steps},
                      {"skipped_steps", s.skipped_steps},
                      {"consecutive_skips", s.consecutive_skips},
                      {"loss_scale", s.loss_scale},
                      {"loss_scale_good_steps", s.loss_scale_good_steps},
                      {"loss_scale_skipped", s.loss_scale_skipped}};
  if (!run.empty()) j["run"] = run;
  if (!config_hash.empty()) j["config_hash"] = config_hash;
  return j.dump(2);
}

TrainerState trainer_state_from_json(const std::string& text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not a trainer state: {}", origin, e.what()));
  }
  RLFT_CHECK(j.value("format", "") == "rlft-trainer-state-1", "{}: unknown trainer-state format '{}'", origin,
             j.value("format", ""));
  TrainerState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.cursor = j.at("cursor").get<int64_t>();
    s.optimizer_steps = j.at("optimizer_steps").get<int64_t>();
    s.skipped_steps = j.at("skipped_steps").get<int64_t>();
    s.consecutive_skips = j.at("consecutive_skips").get<int64_t>();
    s.loss_scale = j.at("loss_scale").get<double>();
    s.loss_scale_good_steps = j.at("loss_scale_good_steps").get<int64_t>();
    s.loss_scale_skipped = j.at("loss_scale_skipped").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: {}", origin, e.what()));
  }
  return s;
}

TrainerState load_trainer_state(const std::string& dir, Optimizer& optimizer) {
  const fs::path ts = fs::path(dir) / "trainer_state";
  TrainerState s = trainer_state_from_json(read_all(ts / "state.json"), (ts / "state.json").string());
  if (fs::exists(ts / "optimizer.safetensors") || !fs::exists(ts / "optimizer.bin")) {
    optimizer.load_state((ts / "optimizer.safetensors").string());
  } else {
    optimizer.load_archive_state(read_all(ts / "optimizer.bin"));  // written before the safetensors file
  }
  return s;
}

std::string save_final_model(Job& job, const ExtraWriter& extra) {
  const auto dir = (fs::path(job.output_dir()) / "final").string();
  if (extra || job.model()->lora) {
    checkpoint::AtomicDir out(dir);
    write_model_dir(job, out.path());
    if (extra) extra(out.path());
    out.commit();
  } else {
    write_model_dir(job, dir);
  }
  log::info("model: {}", dir);
  return dir;
}

bool end_of_step(Job& job, const TrainerState& state, const Optimizer& optimizer, int64_t total, int64_t stop_after,
                 const char* what, TrainResult& result, const ExtraWriter& extra, const ExtraWriter& state_extra) {
  if (state.step >= total) return false;
  // A signal may reach the ranks during different steps: they stop together, at the first
  // step end after any of them got it.
  const bool signalled = job.dist().any(stop_requested());
  const bool stop = signalled || (stop_after > 0 && state.step >= stop_after);
  const auto& c = job.spec().checkpoint;
  if (stop || (c.every > 0 && state.step % c.every == 0)) {
    check_weights_agree(job);
    job.dist().on_main("write a checkpoint", [&] {
      result.checkpoint = save_training_checkpoint(job, state, optimizer, c.keep, extra, state_extra);
    });
  }
  if (!stop) return false;
  log::info("{}: stopped after step {} ({}); continue with --resume", what, state.step,
            signalled ? "signal" : "--stop-after");
  result.interrupted = true;
  result.steps = state.step;
  job.finish("interrupted");
  return true;
}

TrainResult finish_training(Job& job, const TrainerState& state, const Optimizer& optimizer, const ExtraWriter& extra,
                            const ExtraWriter& state_extra) {
  TrainResult result;
  check_weights_agree(job);
  job.dist().on_main("write the final model", [&] {
    result.checkpoint = save_training_checkpoint(job, state, optimizer, job.spec().checkpoint.keep, extra, state_extra);
    result.final_dir = save_final_model(job, extra);
  });
  result.steps = state.step;
  job.finish("finished");
  return result;
}

}  // namespace rlft::rl
