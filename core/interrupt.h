#pragma once
// Graceful stop on SIGINT / SIGTERM: the first signal sets a flag that long-running loops
// check between steps (a trainer finishes its step, writes a checkpoint and exits 0); a
// second one restores the default action, so pressing Ctrl-C twice always ends the process.
// A rank of `rlft launch` (RLFT_LAUNCHER_PID set) keeps its handler: the launcher forwards
// a signal once and answers a second one with SIGKILL.

namespace rlft {

/// Installs the handlers (idempotent).
void install_stop_handlers();
/// True once SIGINT or SIGTERM arrived (or request_stop() was called).
bool stop_requested();
/// The signal that asked to stop (0 = none or request_stop()).
int stop_signal();
void request_stop();

}  // namespace rlft
