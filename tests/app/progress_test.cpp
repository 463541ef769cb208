// The progress display: a redrawn bar with rate and ETA on a terminal, plain log lines
// otherwise. Both through a real process; the terminal is a pseudo-terminal from script(1).
#include <doctest/doctest.h>

#include "tests/support/process.h"
#include "tests/support/text_util.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

namespace {}  // namespace

TEST_CASE("without a terminal, progress is plain log lines") {
  auto r = rlft::test::run_rlft({"bench", "gemm", "--sizes", "32,48,64"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(contains(r.err, "INFO  gemm 3/3"));
  CHECK(contains(r.err, "done in"));
  CHECK_FALSE(contains(r.err, "\r"));
  CHECK(contains(r.out, "fp32 GF/s"));
}

TEST_CASE("on a terminal, progress is a bar redrawn in place with rate and ETA") {
  const std::string cmd = std::string(RLFT_BINARY) + " bench gemm --sizes 32,48,64,96";
  auto r = rlft::test::run_process({"script", "-qfec", cmd, "/dev/null"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.out << r.err);
  CHECK(contains(r.out, "\rgemm "));
  CHECK(contains(r.out, "\u2588"));  // the bar
  CHECK(contains(r.out, "it/s"));
  CHECK(contains(r.out, "4/4"));
}
