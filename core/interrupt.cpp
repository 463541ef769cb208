#include "core/interrupt.h"

#include <atomic>
#include <csignal>
#include <cstdlib>

namespace rlft {
namespace {

std::atomic<int> g_signal{0};
std::atomic<bool> g_stop{false};

// Under `rlft launch` a signal may arrive twice (sent to the whole job and forwarded by the
// launcher): the launcher escalates with SIGKILL itself, so the handler stays.
bool g_launched = false;

extern "C" void on_stop_signal(int sig) {
  g_signal.store(sig);
  g_stop.store(true);
  if (!g_launched) std::signal(sig, SIG_DFL);  // a second signal ends the process
}

}  // namespace

void install_stop_handlers() {
  g_launched = std::getenv("RLFT_LAUNCHER_PID") != nullptr;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool stop_requested() {
  return g_stop.load();
}
int stop_signal() {
  return g_signal.load();
}
void request_stop() {
  g_stop.store(true);
}

}  // namespace rlft
