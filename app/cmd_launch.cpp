// `rlft launch --nproc N [--master-addr A] [--master-port P] [--threads-per-rank T] -- COMMAND …`:
// starts N local ranks of `rlft COMMAND …` with the variables torchrun sets (RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and waits for them.
//
//   - SIGINT / SIGTERM to the launcher go to every rank (they stop together at the end of the
//     step, rank 0 writes a checkpoint); a second one kills them.
//   - A rank that fails (non-zero exit or a signal) fails the launch: its rank, pid and exit
//     are named, the others get SIGTERM, and after a grace period SIGKILL. Exit 1.
//   - Each rank runs in its own process group (a terminal's Ctrl-C reaches the launcher only,
//     which forwards it once) and dies with the launcher (PR_SET_PDEATHSIG).
//   - OMP_NUM_THREADS (what `run.threads: 0` follows) is set to the cores ÷ N unless given.
#include <CLI/CLI.hpp>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "app/cli.h"
#include "core/error.h"

extern char** environ;

namespace rlft::app {
namespace {

std::atomic<int> g_launch_signal{0};
std::atomic<int> g_launch_signals{0};

extern "C" void on_launch_signal(int sig) {
  g_launch_signal.store(sig);
  g_launch_signals.fetch_add(1);
}

struct LaunchCli {
  int nproc = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  int threads_per_rank = 0;
  double grace_s = 10.0;
  std::vector<std::string> command;
};

int free_port(const std::string& addr) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  RLFT_CHECK(fd >= 0, "rlft launch: cannot open a socket to find a free port: {}", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = 0;
  if (inet_pton(AF_INET, addr.c_str(), &a.sin_addr) != 1) a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  close(fd);
  RLFT_CHECK(ok, "rlft launch: cannot find a free port on {}; give --master-port", addr);
  return ntohs(a.sin_port);
}

int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return "ended";
}

struct Rank {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
  int status = 0;
};

// A rank's environment: the launcher's, with torchrun's variables for this rank.
std::vector<std::string> rank_environment(const LaunchCli& o, int rank, int port, int threads) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string v = *e;
    const auto eq = v.find('=');
    if (eq != std::string::npos) env[v.substr(0, eq)] = v.substr(eq + 1);
  }
  env["RANK"] = env["LOCAL_RANK"] = std::to_string(rank);
  env["WORLD_SIZE"] = env["LOCAL_WORLD_SIZE"] = std::to_string(o.nproc);
  env["MASTER_ADDR"] = o.master_addr;
  env["MASTER_PORT"] = std::to_string(port);
  env["RLFT_LAUNCHER_PID"] = std::to_string(getpid());
  if (o.threads_per_rank > 0 || !env.count("OMP_NUM_THREADS")) env["OMP_NUM_THREADS"] = std::to_string(threads);
  env.erase("SLURM_STEP_NUM_TASKS");  // the launcher's variables win over an enclosing srun step's
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

pid_t start_rank(const std::string& exe, const LaunchCli& o, int rank, int port, int threads) {
  // Everything the child needs is built before fork(): after it, only async-signal-safe calls.
  std::vector<std::string> args{exe};
  args.insert(args.end(), o.command.begin(), o.command.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  auto vars = rank_environment(o, rank, port, threads);
  std::vector<char*> envp;
  for (auto& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  const pid_t launcher = getpid();
  const pid_t pid = fork();
  RLFT_CHECK(pid >= 0, "rlft launch: fork failed: {}", std::strerror(errno));
  if (pid > 0) return pid;
  // The child: its own process group, gone with the launcher.
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != launcher) _exit(1);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  execve(exe.c_str(), argv.data(), envp.data());
  static const char msg[] = "rlft launch: cannot run the rlft executable\n";
  (void)!write(2, msg, sizeof msg - 1);
  _exit(127);
}

void signal_running(std::vector<Rank>& ranks, int sig) {
  for (auto& r : ranks)
    if (r.running) kill(r.pid, sig);
}

// Reaps every rank that ended; true when one did.
bool reap(std::vector<Rank>& ranks, std::vector<int>& ended_order) {
  bool any = false;
  for (auto& r : ranks) {
    if (!r.running) continue;
    int status = 0;
    const pid_t got = waitpid(r.pid, &status, WNOHANG);
    if (got == -1 && errno == ECHILD) status = 1 << 8;  // already reaped elsewhere: count as failed
    if (got == r.pid || (got == -1 && errno == ECHILD)) {
      r.running = false;
      r.status = status;
      ended_order.push_back(r.rank);
      any = true;
    }
  }
  return any;
}

bool failed(int status) {
  return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// The first rank, in the order they ended, that failed (-1: none).
int first_failed(const std::vector<Rank>& ranks, const std::vector<int>& ended) {
  for (const int r : ended)
    if (failed(ranks[static_cast<size_t>(r)].status)) return r;
  return -1;
}

void run_launch(const LaunchCli& o) {
  RLFT_CHECK_AS(UsageError, o.nproc >= 1, "--nproc {}: must be >= 1", o.nproc);
  RLFT_CHECK_AS(UsageError, !o.command.empty(),
                "rlft launch: give the command after --, e.g. "
                "rlft launch --nproc 2 -- train CONFIG");
  RLFT_CHECK_AS(UsageError, o.command.front() != "launch", "rlft launch: the command cannot be launch itself");
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  RLFT_CHECK(n > 0, "rlft launch: cannot find its own executable: {}", std::strerror(errno));
  const std::string exe(buf, static_cast<size_t>(n));
  const int port = o.master_port > 0 ? o.master_port : free_port(o.master_addr);
  const int threads = o.threads_per_rank > 0 ? o.threads_per_rank : std::max(1, usable_cores() / o.nproc);

  struct sigaction sa {};
  sa.sa_handler = on_launch_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGCHLD, SIG_DFL);  // an inherited SIG_IGN would make the children unwaitable

  std::vector<Rank> ranks;
  for (int r = 0; r < o.nproc; ++r) {
    Rank k;
    k.rank = r;
    k.pid = start_rank(exe, o, r, port, threads);
    k.running = true;
    ranks.push_back(k);
    std::fprintf(stderr, "rlft launch: rank %d/%d pid %d\n", r, o.nproc, static_cast<int>(k.pid));
  }
  std::fprintf(stderr, "rlft launch: %d ranks, rendezvous %s:%d, %d threads each\n", o.nproc, o.master_addr.c_str(),
               port, threads);

  std::vector<int> ended;
  int forwarded = 0;
  int first_failure = -1;
  std::chrono::steady_clock::time_point kill_at{};
  for (;;) {
    reap(ranks, ended);
    const bool any_running = std::any_of(ranks.begin(), ranks.end(), [](const Rank& r) { return r.running; });
    if (!any_running) break;
    const int signals = g_launch_signals.load();
    if (signals > forwarded) {
      // The first signal is forwarded as is (a graceful stop); a second one kills.
      if (forwarded == 0) {
        const int sig = g_launch_signal.load();
        std::fprintf(stderr, "rlft launch: %s to every rank\n", strsignal(sig));
        signal_running(ranks, sig);
      }
      if (signals >= 2) {
        std::fprintf(stderr, "rlft launch: a second signal: killing every rank\n");
        signal_running(ranks, SIGKILL);
      }
      forwarded = signals;
    }
    if (first_failure < 0) {
      first_failure = first_failed(ranks, ended);
      if (first_failure >= 0) {
        const auto& f = ranks[static_cast<size_t>(first_failure)];
        std::fprintf(stderr, "rlft launch: rank %d (pid %d) %s; stopping the other ranks\n", f.rank,
                     static_cast<int>(f.pid), describe_exit(f.status).c_str());
        signal_running(ranks, SIGTERM);
        kill_at =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.grace_s * 1000.0));
      }
    } else if (std::chrono::steady_clock::now() >= kill_at) {
      signal_running(ranks, SIGKILL);
      kill_at = std::chrono::steady_clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (first_failure < 0) first_failure = first_failed(ranks, ended);
  if (first_failure >= 0) {
    const auto& f = ranks[static_cast<size_t>(first_failure)];
    std::vector<std::string> others;
    for (const auto& r : ranks)
      if (r.rank != f.rank) others.push_back(fmt::format("rank {} {}", r.rank, describe_exit(r.status)));
    throw Error(fmt::format("rlft launch: rank {} (pid {}) {} first{}{}", f.rank, f.pid, describe_exit(f.status),
                            others.empty() ? "" : "; then ", fmt::join(others, ", ")));
  }
}

}  // namespace

void add_launch_command(CLI::App& app) {
  auto o = std::make_shared<LaunchCli>();
  CLI::App* cmd = app.add_subcommand("launch", "Start N local ranks of a distributed run (like torchrun)");
  cmd->add_option("--nproc", o->nproc, "ranks to start on this machine")->required();
  cmd->add_option("--master-addr", o->master_addr, "rendezvous address (rank 0 listens there)")->capture_default_str();
  cmd->add_option("--master-port", o->master_port, "rendezvous port; 0 = a free one")->capture_default_str();
  cmd->add_option("--threads-per-rank", o->threads_per_rank,
                  "OMP_NUM_THREADS of each rank; 0 = the cores divided by --nproc (an existing OMP_NUM_THREADS wins)")
      ->capture_default_str();
  cmd->add_option("--grace", o->grace_s, "seconds the other ranks get to stop after one fails, before SIGKILL")
      ->capture_default_str();
  cmd->add_option("command", o->command, "the rlft command each rank runs, after --: train CONFIG …")->required();
  cmd->callback([o] { run_launch(*o); });
}

}  // namespace rlft::app
