#include "tests/support/ranks.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <future>

namespace rlft::test {

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

std::vector<ProcessResult> run_ranks(int world, const std::string& test_case, const std::string& scenario) {
  const std::string port = std::to_string(free_port());
  std::vector<std::future<ProcessResult>> futures;
  for (int r = 0; r < world; ++r) {
    std::map<std::string, std::string> env{{"RANK", std::to_string(r)},
                                           {"WORLD_SIZE", std::to_string(world)},
                                           {"MASTER_ADDR", "127.0.0.1"},
                                           {"MASTER_PORT", port},
                                           {"RLFT_TEST_SCENARIO", scenario}};
    futures.push_back(std::async(std::launch::async, [env, test_case] {
      return run_process({self_exe(), "--no-skip", "-tc=" + test_case, "--no-version"}, env);
    }));
  }
  std::vector<ProcessResult> out;
  for (auto& f : futures) out.push_back(f.get());
  return out;
}

std::string rank_scenario() {
  const char* s = std::getenv("RLFT_TEST_SCENARIO");
  return s ? s : "";
}

}  // namespace rlft::test
