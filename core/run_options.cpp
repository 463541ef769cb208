#include "core/run_options.h"

#include <regex>

#include "core/config.h"
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
  o.validate(c);
  return o;
}

void RunOptions::validate(const ConfigView& c) const {
  static const std::regex kName("[A-Za-z0-9_.-]*");
  c.check(std::regex_match(name, kName), "name", "must use only letters, digits, '_', '-' and '.'");
  c.check(seed >= 0, "seed", "must be >= 0");
  c.check(!store.empty(), "store", "must be a file path");
  c.check(threads >= 0 && threads <= 1024, "threads", "must be in [0, 1024] (0 = every core)");
  static const std::regex kDevice("cpu|auto|cuda(:[0-9]+)?");
  c.check(std::regex_match(device, kDevice), "device", "must be cpu, cuda, cuda:N or auto");
  bool level_ok = true;
  try {
    log::parse_level(log_level);
  } catch (const std::exception&) {
    level_ok = false;
  }
  c.check(level_ok, "log_level", "must be debug, info, warn or error");
}

}  // namespace rlft
