// `rlft config show FILE [--set k=v …]`: the fully resolved configuration (includes merged,
// overrides applied, defaults filled in), after the same validation a run does.
#include <CLI/CLI.hpp>

#include <iostream>

#include "app/cli.h"
#include "app/job_config.h"

namespace rlft::app {

void add_config_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("config", "Inspect configuration files");
  cmd->require_subcommand(1);
  struct ShowOptions {
    std::string file;
    std::vector<std::string> overrides;
    bool hash = false;
  };
  auto o = std::make_shared<ShowOptions>();
  CLI::App* show = cmd->add_subcommand("show", "Print the resolved config (includes, --set and defaults applied)");
  show->add_option("file", o->file, "YAML config file")->required();
  show->add_option("--set", o->overrides, "override a key: a.b.c=value (repeatable)");
  show->add_flag("--hash", o->hash, "print the config hash that ranks compare, after the YAML");
  show->callback([o] {
    const JobConfig job = load_job_config(o->file, o->overrides);
    std::cout << job.view.to_yaml();
    if (o->hash) std::cout << "# hash: " << job.view.run_hash() << "\n";
  });
}

}  // namespace rlft::app
