// Every ready-made config in configs/ validates, as a user would check it.
#include <doctest/doctest.h>

#include <filesystem>

#include "tests/support/process.h"

TEST_CASE("every config in configs/ validates with rlft config show") {
  namespace fs = std::filesystem;
  int n = 0;
  for (const auto& entry : fs::recursive_directory_iterator(fs::path(RLFT_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".yaml") continue;
    auto r = rlft::test::run_rlft({"config", "show", entry.path().string()});
    CHECK_MESSAGE(r.exit_code == 0, entry.path().string() << ": " << r.err);
    ++n;
  }
  CHECK(n >= 10);
}
