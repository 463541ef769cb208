#include "app/job_config.h"

#include "rl/job.h"

namespace rlft::app {

JobConfig load_job_config(const std::string& path, const std::vector<std::string>& overrides) {
  ConfigView view = ConfigView::load(path, overrides);
  // Every section a job may hold is parsed (data loaded, rewards built) exactly as a run
  // would, and unknown keys are rejected.
  auto parsed = rl::parse_job(view, rl::JobKind::kAny);
  return JobConfig{std::move(view), std::move(parsed.spec.run)};
}

}  // namespace rlft::app
