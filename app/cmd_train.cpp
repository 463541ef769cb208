// `rlft train CONFIG` (GRPO), `rlft sft CONFIG` (supervised warm start), `rlft dpo CONFIG`
// (preference optimisation), `rlft rm train CONFIG` (a reward model) and `rlft eval CONFIG`
// (held-out evaluation of the config's policy): one run each, recorded in the store.
//   --set a.b=v     override a key (repeatable)
//   --resume        continue the run (run.name) from its newest checkpoint
//   --stop-after N  stop after step N as if interrupted (a checkpoint, exit 0)
// SIGINT / SIGTERM finish the current step, write a checkpoint and exit 0.
// Under `rlft launch` (or torchrun, SLURM) each command runs data-parallel: docs/distributed.md.
#include <CLI/CLI.hpp>

#include <fmt/format.h>

#include <fstream>
#include <functional>
#include <iostream>

#include <memory>
#include <nlohmann/json.hpp>

#include "app/cli.h"
#include "core/config.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/threads.h"
#include "policy/tokenizer/tokenizer.h"
#include "reward/reward_model.h"
#include "rl/dpo_trainer.h"
#include "rl/evaluate.h"
#include "rl/grpo_trainer.h"
#include "rl/job.h"
#include "rl/rm_trainer.h"
#include "rl/sft_trainer.h"

namespace rlft::app {
namespace {

struct TrainCli {
  std::string file;
  std::vector<std::string> overrides;
  bool resume = false;
  int64_t stop_after = 0;
};

/// An opened run and the trainers' sections its config holds.
struct OpenedJob {
  std::unique_ptr<rl::Job> job;
  rl::TrainerSections trainers;
};

/// Parses the config, applies its log level and threads, lets `prepare` add to the spec (what
/// must be known before the Job trains a tokenizer), and opens the run.
OpenedJob open_job(const TrainCli& o, rl::JobKind kind, const char* store_kind,
                   const std::function<void(rl::JobSpec&, const rl::TrainerSections&)>& prepare = {}) {
  const ConfigView view = ConfigView::load(o.file, o.overrides);
  auto parsed = rl::parse_job(view, kind);
  auto& spec = parsed.spec;
  log::set_level(log::parse_level(spec.run.log_level));
  const int threads = apply_thread_count(spec.run.threads);
  log::info("{} '{}': config {} (hash {}), {} intra-op threads", store_kind, spec.run.name, o.file,
            spec.config_hash.substr(0, 12), threads);
  if (!spec.dataset.description.empty()) log::info("data: {}", spec.dataset.description);
  if (prepare) prepare(spec, parsed.trainers);
  return {std::make_unique<rl::Job>(std::move(spec), store_kind, o.resume), parsed.trainers};
}

void report(rl::Job& job, const rl::TrainResult& r) {
  if (!job.is_main()) return;  // rank 0 speaks for the run
  if (r.interrupted)
    std::cout << fmt::format("stopped after step {}; checkpoint {}\n", r.steps, r.checkpoint);
  else
    std::cout << fmt::format("finished {} steps; model {}\n", r.steps, r.final_dir);
  std::cout << fmt::format("look at it: rlft runs show {} --store {}\n", job.run_name(), job.spec().run.store);
}

void add_options(CLI::App* cmd, const std::shared_ptr<TrainCli>& o, bool training) {
  cmd->add_option("config", o->file, "YAML config file")->required();
  cmd->add_option("--set", o->overrides, "override a key: a.b.c=value (repeatable)");
  if (training) {
    cmd->add_flag("--resume", o->resume, "continue run.name from its newest checkpoint");
    cmd->add_option("--stop-after", o->stop_after, "stop after this step with a checkpoint (as on SIGINT)");
  }
}

}  // namespace

void add_train_commands(CLI::App& app) {
  {
    auto o = std::make_shared<TrainCli>();
    CLI::App* cmd = app.add_subcommand("train", "GRPO training from a YAML config");
    add_options(cmd, o, true);
    cmd->callback([o] {
      auto run = open_job(*o, rl::JobKind::kGrpo, "train");
      report(*run.job, rl::run_grpo(*run.job, *run.trainers.grpo, o->stop_after));
    });
  }
  {
    auto o = std::make_shared<TrainCli>();
    CLI::App* cmd = app.add_subcommand("sft", "Supervised fine-tuning (warm start) from a YAML config");
    add_options(cmd, o, true);
    cmd->callback([o] {
      auto run = open_job(*o, rl::JobKind::kSft, "sft");
      report(*run.job, rl::run_sft(*run.job, *run.trainers.sft, o->stop_after));
    });
  }
  {
    auto o = std::make_shared<TrainCli>();
    CLI::App* cmd =
        app.add_subcommand("dpo", "Preference optimisation of the policy (DPO, IPO, SimPO) from a YAML config");
    add_options(cmd, o, true);
    cmd->callback([o] {
      rl::PreferenceSet pairs;
      auto run = open_job(*o, rl::JobKind::kDpo, "dpo", [&pairs](rl::JobSpec& spec, const rl::TrainerSections& t) {
        pairs = rl::load_preference_texts(t.dpo->source, spec.run.store, "dpo");
        rl::check_enough_pairs(pairs, "rlft dpo");
        for (const auto& p : pairs.pairs) spec.tokenizer_corpus.push_back(p.prompt + p.chosen + p.rejected);
        log::info("dpo: {} preference pairs from {}", pairs.pairs.size(),
                  t.dpo->source.pairs == "store" ? spec.run.store : t.dpo->source.pairs);
      });
      report(*run.job, rl::run_dpo(*run.job, *run.trainers.dpo, pairs, o->stop_after));
    });
  }
  {
    CLI::App* rm = app.add_subcommand("rm", "Train or score a preference reward model");
    rm->require_subcommand(1);
    auto o = std::make_shared<TrainCli>();
    CLI::App* train = rm->add_subcommand("train", "Bradley-Terry training on preference pairs from a YAML config");
    add_options(train, o, true);
    train->callback([o] {
      std::vector<rl::PreferenceText> pairs;
      auto run = open_job(*o, rl::JobKind::kRm, "rm", [&pairs](rl::JobSpec& spec, const rl::TrainerSections& t) {
        auto set = rl::load_preference_texts(t.rm->source, spec.run.store, "rm");
        rl::check_enough_pairs(set, "rlft rm train");
        pairs = std::move(set.pairs);
        for (const auto& p : pairs) spec.tokenizer_corpus.push_back(p.prompt + p.chosen + p.rejected);
        log::info("rm: {} preference pairs from {}", pairs.size(),
                  t.rm->source.pairs == "store" ? spec.run.store : t.rm->source.pairs);
      });
      report(*run.job, rl::run_rm(*run.job, *run.trainers.rm, pairs, o->stop_after));
    });
    struct ScoreCli {
      std::string dir, prompt, jsonl;
      std::vector<std::string> completions;
      int64_t batch_size = 32, max_length = 0;
    };
    auto so = std::make_shared<ScoreCli>();
    CLI::App* score = rm->add_subcommand("score", "Score completions with a reward-model directory");
    score->add_option("dir", so->dir, "a reward-model directory (from rlft rm train)")->required();
    score->add_option("--prompt", so->prompt, "the prompt (with --completion)");
    score->add_option("--completion", so->completions, "a completion to score (repeatable)");
    score->add_option("--jsonl", so->jsonl,
                      "a file of {\"prompt\": str, \"completion\": str} or {\"messages\": [...], \"completion\": "
                      "str} lines (- = stdin)");
    score->add_option("--batch-size", so->batch_size, "rows scored together")->capture_default_str();
    score->add_option("--max-length", so->max_length, "keep the last N tokens (0 = all)")->capture_default_str();
    score->callback([so] {
      // Each line's prompt as chat messages (a text prompt is one user message), as the
      // reward model reads it (reward::RewardInput), and the line echoed with its score.
      std::vector<std::vector<data::ChatMessage>> prompts;
      std::vector<std::string> completions;
      std::vector<nlohmann::json> echo;
      for (const auto& c : so->completions) {
        prompts.push_back({{"user", so->prompt}});
        completions.push_back(c);
        echo.push_back({{"prompt", so->prompt}, {"completion", c}});
      }
      if (!so->jsonl.empty()) {
        std::ifstream file;
        if (so->jsonl != "-") {
          file.open(so->jsonl);
          RLFT_CHECK_AS(UsageError, file.good(), "--jsonl: cannot read {}", so->jsonl);
        }
        std::istream& in = so->jsonl == "-" ? std::cin : file;
        std::string line;
        for (int64_t n = 1; std::getline(in, line); ++n) {
          if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
          const auto fail = [&](const std::string& field, const std::string& what) {
            throw UsageError(fmt::format("{}:{}: {}: {}", so->jsonl, n, field, what));
          };
          nlohmann::json j;
          try {
            j = nlohmann::json::parse(line);
          } catch (const nlohmann::json::exception& e) {
            fail("line", fmt::format("not JSON: {}", e.what()));
          }
          if (!j.is_object()) fail("line", "expected {\"prompt\" or \"messages\", \"completion\"}");
          if (!j.contains("completion") || !j["completion"].is_string()) fail("completion", "a string is required");
          std::vector<data::ChatMessage> messages;
          if (j.contains("messages")) {
            if (!j["messages"].is_array() || j["messages"].empty()) fail("messages", "must be a non-empty list");
            for (size_t i = 0; i < j["messages"].size(); ++i)
              messages.push_back(data::parse_chat_message(j["messages"][i], fmt::format("messages[{}]", i), fail));
          } else if (j.contains("prompt") && j["prompt"].is_string()) {
            messages.push_back({"user", j["prompt"].get<std::string>()});
          } else {
            fail("prompt", "a string prompt or a messages list is required");
          }
          prompts.push_back(std::move(messages));
          completions.push_back(j["completion"].get<std::string>());
          echo.push_back(std::move(j));
        }
      }
      RLFT_CHECK_AS(UsageError, !completions.empty(), "nothing to score: give --prompt and --completion, or --jsonl");
      policy::ModelOptions mo;
      auto model = reward::load_reward_model(so->dir, mo);
      model->eval();
      const auto tok = tokenizer::Tokenizer::load(so->dir);
      const auto& eos = model->backbone->config().eos_token_id;
      RLFT_CHECK(!eos.empty(), "{}/config.json has no eos_token_id", so->dir);
      const auto input = reward::RewardInput::of_dir(so->dir, eos.front(), so->max_length);
      std::vector<std::vector<int64_t>> rows;
      for (size_t i = 0; i < prompts.size(); ++i) rows.push_back(input.ids(tok, prompts[i], completions[i]));
      const auto scores = reward::score_ids(model, rows, so->batch_size);
      for (size_t i = 0; i < scores.size(); ++i) {
        echo[i]["score"] = scores[i];
        std::cout << echo[i].dump() << "\n";
      }
    });
  }
  {
    auto o = std::make_shared<TrainCli>();
    CLI::App* cmd = app.add_subcommand("eval", "Evaluate the config's policy on its held-out split");
    add_options(cmd, o, false);
    cmd->callback([o] {
      auto run = open_job(*o, rl::JobKind::kAny, "eval");
      auto& job = run.job;
      auto& spec = job->spec();
      RLFT_CHECK_AS(ConfigError, spec.rewards != nullptr, "{}: rlft eval needs a `rewards:` section", o->file);
      const int64_t tokens = spec.eval.max_new_tokens > 0 ? spec.eval.max_new_tokens
                             : run.trainers.grpo          ? run.trainers.grpo->max_new_tokens
                                                          : 64;
      const auto ev = rl::evaluate(*job, spec.dataset.eval, spec.eval, tokens, static_cast<uint64_t>(spec.run.seed));
      job->log_metrics(0, ev.metrics());
      job->finish("finished");
      if (!job->is_main()) return;
      for (const auto& [k, v] : ev.metrics()) std::cout << fmt::format("{:<24} {:.4f}\n", k, v);
    });
  }
}

}  // namespace rlft::app
