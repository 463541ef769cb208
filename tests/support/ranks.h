#pragma once
// Multi-process tests on loopback: a test binary starts copies of itself as ranks, each
// running one skipped test case with torchrun's variables and a scenario name.

#include <map>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace rlft::test {

/// A TCP port on 127.0.0.1 free at the time of the call.
int free_port();
/// The running test binary.
std::string self_exe();
/// Starts `world` ranks of this binary running test case `test_case` (marked skip, so it runs
/// only when asked) with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT and RLFT_TEST_SCENARIO;
/// waits for them all and returns each one's result, in rank order.
std::vector<ProcessResult> run_ranks(int world, const std::string& test_case, const std::string& scenario);
/// The scenario a rank was started with ("" outside run_ranks).
std::string rank_scenario();

}  // namespace rlft::test
