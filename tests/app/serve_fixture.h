#pragma once
// A live `rlft serve` for the HTTP tests: a store with one run (metrics, expert load,
// rollouts — one with a <script> completion), an imported pair and tokens for two
// annotators; the server runs as a real child process on 127.0.0.1 and a free port.

#include <doctest/doctest.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "data/feedback.h"
#include "data/store.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

extern char** environ;

namespace rlft::test {

inline const char* const kScriptCompletion = "<script>alert('pwned')</script> & more";

/// The store every serve test starts from; returns the run's id.
inline int64_t seed_store(const std::string& path) {
  data::Store store = data::Store::open(path, /*create=*/true);
  data::RunRecord run;
  run.name = "grpo-<demo>";
  run.kind = "train";
  run.config = "rollout:\n  group_size: 4\n";
  const int64_t id = store.create_run(run);
  for (int64_t step = 1; step <= 7; ++step) {
    std::vector<std::pair<std::string, double>> m = {{"reward/mean", 0.1 * double(step)}, {"kl", 0.01 * double(step)}};
    for (int e = 0; e < 4; ++e) m.emplace_back("moe/load/layer0/expert" + std::to_string(e), e == 0 ? 0.4 : 0.2);
    m.emplace_back("moe/balance/layer0", 1.6);
    store.log_metrics(id, step, m);
  }
  std::vector<data::RolloutRecord> rollouts;
  for (int64_t p = 0; p < 3; ++p)
    for (int64_t s = 0; s < 4; ++s) {
      data::RolloutRecord r;
      r.step = 7;
      r.prompt_index = p;
      r.sample_index = s;
      r.prompt = "What is " + std::to_string(p) + " + 2?";
      r.completion = (p == 0 && s == 0) ? kScriptCompletion : "answer " + std::to_string(p + s);
      r.reward = double(s);
      r.parts = {{"answer", double(s)}, {"format", 0.5}};
      r.advantage = double(s) - 1.5;
      r.finish_reason = "stop";
      rollouts.push_back(r);
    }
  store.add_rollouts(id, rollouts);
  data::FeedbackStore fb(store);
  data::PreferencePair pair;
  pair.prompt.text = "Name a prime.";
  pair.chosen.text = "7";
  pair.rejected.text = "8";
  pair.source_file = "prefs.jsonl";
  pair.source_line = 1;
  pair.source_format = "pairs";
  pair.import_id = fb.begin_import("prefs.jsonl", "pairs");
  fb.add_pair(pair);
  return id;
}

inline std::string add_token(const std::string& store, const std::string& name) {
  const auto r = run_rlft({"serve", "token", "add", name, "--store", store});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  std::string token = r.out;
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  return token;
}

/// `rlft serve --port 0 ARGS…` as a child; the constructor waits for its "listening on" line.
class ServeProcess {
 public:
  explicit ServeProcess(const std::vector<std::string>& args) {
    int out[2];
    REQUIRE(pipe(out) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addclose(&fa, out[1]);
    std::vector<std::string> argv = {RLFT_BINARY, "serve", "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargs;
    for (auto& a : argv) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    REQUIRE(posix_spawn(&pid_, RLFT_BINARY, &fa, nullptr, cargs.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    std::string line;
    char c;
    while (read(out[0], &c, 1) == 1 && c != '\n') line += c;
    out_fd_ = out[0];
    const std::string marker = "listening on http://127.0.0.1:";
    const auto at = line.find(marker);
    REQUIRE_MESSAGE(at != std::string::npos, "rlft serve printed: " << line);
    port_ = std::stoi(line.substr(at + marker.size()));
  }
  ~ServeProcess() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    close(out_fd_);
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  int port() const { return port_; }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    return c;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int port_ = 0;
};

inline bool has(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}

inline httplib::Headers bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

/// The value of <meta name="csrf" content="…"> in a page.
inline std::string csrf_of(const std::string& html) {
  const std::string key = "<meta name=\"csrf\" content=\"";
  const auto at = html.find(key);
  if (at == std::string::npos) return "";
  return html.substr(at + key.size(), html.find('"', at + key.size()) - at - key.size());
}

/// The value of a hidden input `name` in a page ("" when absent).
inline std::string hidden_of(const std::string& html, const std::string& name) {
  const std::string key = "name=\"" + name + "\" value=\"";
  const auto at = html.find(key);
  if (at == std::string::npos) return "";
  return html.substr(at + key.size(), html.find('"', at + key.size()) - at - key.size());
}

}  // namespace rlft::test
