#pragma once
// The rlft command line. Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace rlft::app {

/// Parses argv, runs the chosen subcommand and maps every error to an exit code.
int run(int argc, char** argv);

/// Each subcommand file adds itself to the top-level app (one visible call each in cli.cpp).
void add_doctor_command(CLI::App& app);
void add_config_command(CLI::App& app);
void add_runs_command(CLI::App& app);
void add_bench_command(CLI::App& app);
/// `rlft model init|info|logits` (app/cmd_model.cpp).
void add_model_command(CLI::App& app);
/// `rlft bench model`, added to the `bench` command by add_bench_command (app/cmd_bench_model.cpp).
void add_bench_model(CLI::App& bench);
/// `rlft feedback import|export|stats` (app/cmd_feedback.cpp).
void add_feedback_command(CLI::App& app);
/// `rlft generate DIR` (app/cmd_generate.cpp).
void add_generate_command(CLI::App& app);
/// `rlft bench rollout`, added to the `bench` command by add_bench_command (app/cmd_bench_rollout.cpp).
void add_bench_rollout(CLI::App& bench);
/// `rlft serve` and `rlft serve token …` (app/cmd_serve.cpp).
void add_serve_command(CLI::App& app);
/// `rlft tokenize …` and `rlft tokenizer train …` (app/cmd_tokenize.cpp).
void add_tokenize_commands(CLI::App& app);
/// `rlft bench tokenizer`, added to the `bench` command by add_bench_command (app/cmd_bench_tokenizer.cpp).
void add_bench_tokenizer(CLI::App& bench);
/// `rlft bench train`, added to the `bench` command by add_bench_command (app/cmd_bench_train.cpp).
void add_bench_train(CLI::App& bench);
/// `rlft bench allreduce`, added to the `bench` command by add_bench_command (app/cmd_bench_allreduce.cpp).
void add_bench_allreduce(CLI::App& bench);
/// `rlft template render` (app/cmd_template.cpp).
void add_template_command(CLI::App& app);
/// `rlft train`, `rlft sft`, `rlft dpo`, `rlft rm`, `rlft eval` (app/cmd_train.cpp).
void add_train_commands(CLI::App& app);
/// `rlft launch --nproc N -- COMMAND …` (app/cmd_launch.cpp).
void add_launch_command(CLI::App& app);

}  // namespace rlft::app
