#pragma once
// Runs a real child process (the rlft binary, python3 …) and captures its output.

#include <map>
#include <string>
#include <vector>

namespace rlft::test {

struct ProcessResult {
  int exit_code = -1;  ///< exit status, or 128 + signal
  std::string out;     ///< stdout
  std::string err;     ///< stderr
};

/// Runs argv[0] (searched on PATH) with `args`; `env` entries are added to the environment
/// and the names in `unset_env` removed from it; `stdin_text` is written to its standard
/// input. Blocks until it exits.
ProcessResult run_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
                          const std::string& stdin_text = "", const std::vector<std::string>& unset_env = {});

/// Runs the rlft binary built with these tests.
ProcessResult run_rlft(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
                       const std::string& stdin_text = "", const std::vector<std::string>& unset_env = {});

/// Starts the rlft binary in the background, stdout and stderr appended to `log_path`, with
/// `env` added to the environment; returns its pid (for signals: kill(pid, SIGINT)).
int spawn_rlft(const std::vector<std::string>& args, const std::string& log_path,
               const std::map<std::string, std::string>& env = {});
/// Waits for a spawned child; its exit status, or 128 + signal.
int wait_child(int pid);

}  // namespace rlft::test
