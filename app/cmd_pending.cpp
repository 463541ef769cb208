// Subcommands whose parts of rlft are not in this build yet. They exist so that `rlft --help`
// shows the whole tool, and say plainly that they cannot run (exit 1).
#include <CLI/CLI.hpp>

#include "app/cli.h"
#include "core/error.h"

namespace rlft::app {

void add_pending_commands(CLI::App& app) {
  const std::pair<const char*, const char*> pending[] = {
      {"launch", "Start N local ranks of a distributed run"},
  };
  for (const auto& [name, help] : pending) {
    CLI::App* cmd = app.add_subcommand(name, std::string(help) + " (not in this build yet)");
    cmd->allow_extras();
    const std::string n = name;
    cmd->callback([n] { throw Error(fmt::format("'rlft {}' is not in this build yet", n)); });
  }
}

}  // namespace rlft::app
