#include "app/job_config.h"

namespace rlft::app {

JobConfig load_job_config(const std::string& path, const std::vector<std::string>& overrides) {
  ConfigView view = ConfigView::load(path, overrides);
  RunOptions run = RunOptions::from_config(view.section("run"));
  view.reject_unknown_keys();
  return JobConfig{std::move(view), std::move(run)};
}

}  // namespace rlft::app
