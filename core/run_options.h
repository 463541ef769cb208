#pragma once
// RunOptions: the `run:` section every job shares — identity, seed, where results go, and
// the machine resources it may use.

#include <string>

namespace rlft {

class ConfigView;

struct RunOptions {
  std::string name;                    ///< run name, unique in the store; "" = derived from the config file and time
  int64_t seed = 0;                    ///< the run seed; every generator derives from (seed, rank, worker, step)
  std::string store = "runs/rlft.db";  ///< the SQLite store (created with its directory)
  std::string output_dir;              ///< checkpoints and artifacts; "" = runs/<name>
  int threads = 0;                     ///< intra-op threads; 0 = OMP_NUM_THREADS if set, else every core
  std::string device = "cpu";          ///< "cpu", "cuda", "cuda:N" or "auto" (CUDA when available)
  std::string log_level = "info";      ///< debug | info | warn | error

  /// Reads the `run:` section (every key optional); read_options() also validates.
  static RunOptions from_config(const ConfigView& run_section);
  /// Throws rlft::OptionError naming the field.
  void validate() const;
};

}  // namespace rlft
