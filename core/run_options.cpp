#include "core/run_options.h"

#include <regex>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"

namespace rlft {

RunOptions RunOptions::from_config(const ConfigView& c) {
  RunOptions o;
  o.name = c.get<std::string>("name", o.name);
  o.seed = c.get<int64_t>("seed", o.seed);
  o.store = c.get<std::string>("store", o.store);
  o.output_dir = c.get<std::string>("output_dir", o.output_dir);
  o.threads = c.get<int>("threads", o.threads);
  o.device = c.get<std::string>("device", o.device);
  o.log_level = c.get<std::string>("log_level", o.log_level);
  return o;
}

void RunOptions::validate() const {
  static const std::regex kName("[A-Za-z0-9_.-]*");
  RLFT_CHECK_OPTION(std::regex_match(name, kName), "name", name, "must use only letters, digits, '_', '-' and '.'");
  RLFT_CHECK_OPTION(seed >= 0, "seed", seed, "must be >= 0");
  RLFT_CHECK_OPTION(!store.empty(), "store", store, "must be a file path");
  RLFT_CHECK_OPTION(threads >= 0 && threads <= 1024, "threads", threads, "must be in [0, 1024] (0 = every core)");
  static const std::regex kDevice("cpu|auto|cuda(:[0-9]+)?");
  RLFT_CHECK_OPTION(std::regex_match(device, kDevice), "device", device, "must be cpu, cuda, cuda:N or auto");
  bool level_ok = true;
  try {
    log::parse_level(log_level);
  } catch (const std::exception&) {
    level_ok = false;
  }
  RLFT_CHECK_OPTION(level_ok, "log_level", log_level, "must be debug, info, warn or error");
}

}  // namespace rlft
