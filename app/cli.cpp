#include "app/cli.h"

#include <c10/util/Exception.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/version_info.h"

namespace rlft::app {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

std::vector<std::string> subcommand_names(const CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) out.push_back(sub->get_name());
  return out;
}

/// "rlft trian" → "unknown command 'trian' (did you mean 'train'?)" before CLI11 sees it.
void check_first_word(const CLI::App& app, int argc, char** argv) {
  if (argc < 2) return;
  const std::string first = argv[1];
  if (first.empty() || first[0] == '-') return;
  const auto names = subcommand_names(app);
  if (std::find(names.begin(), names.end(), first) != names.end()) return;
  std::string msg = fmt::format("unknown command '{}'", first);
  if (auto s = closest_match(first, names)) msg += fmt::format(" (did you mean '{}'?)", *s);
  msg += fmt::format("; commands are: {}", fmt::join(names, ", "));
  throw UsageError(msg);
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"rlft: reinforcement-learning fine-tuning of Mixture-of-Experts language models", "rlft"};
  app.set_version_flag("--version", fmt::format("rlft {} (git {})", RLFT_VERSION, RLFT_GIT_REVISION));
  app.require_subcommand(1);
  app.fallthrough(false);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "debug | info | warn | error")->capture_default_str();

  add_doctor_command(app);
  add_config_command(app);
  add_runs_command(app);
  add_bench_command(app);
  add_model_command(app);
  add_feedback_command(app);
  add_generate_command(app);
  add_serve_command(app);
  add_tokenize_commands(app);
  add_template_command(app);
  add_train_commands(app);
  add_launch_command(app);
  app.parse_complete_callback([&] { log::set_level(log::parse_level(log_level)); });

  try {
    check_first_word(app, argc, argv);
    app.parse(argc, argv);
    return kExitOk;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "rlft: error: %s\nRun 'rlft --help' (or 'rlft COMMAND --help') for usage.\n", e.what());
    return kExitUsage;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "rlft: config error: %s\n", e.what());
    return kExitUsage;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "rlft: error: %s\n", e.what());
    return kExitUsage;
  } catch (const Error& e) {
    std::fprintf(stderr, "rlft: error: %s\n", e.what());
    return kExitFailure;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "rlft: error in LibTorch: %s\n", e.what_without_backtrace());
    return kExitFailure;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rlft: error: %s\n", e.what());
    return kExitFailure;
  }
}

}  // namespace rlft::app
