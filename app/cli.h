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
/// Subcommands that later parts of rlft fill; until then they say so and exit 1.
void add_pending_commands(CLI::App& app);

}  // namespace rlft::app
