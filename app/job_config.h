#pragma once
// A job's configuration: the resolved YAML and the options every module parsed from it.
// Parsing happens here, before any heavy work, so every config error exits 2 up front.

#include <string>
#include <vector>

#include "core/config.h"
#include "core/run_options.h"

namespace rlft::app {

struct JobConfig {
  ConfigView view;  ///< the resolved tree, defaults recorded
  RunOptions run;   ///< `run:`
};

/// Loads `path`, applies `overrides`, parses every known section and rejects unknown keys.
/// Throws ConfigError.
JobConfig load_job_config(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace rlft::app
