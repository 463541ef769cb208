#include "core/registry.h"

#include <doctest/doctest.h>

#include <functional>

TEST_CASE("a registry creates known names and lists them for unknown ones") {
  rlft::Registry<std::function<int()>> reg("reward");
  reg.add("format", [] { return 1; });
  reg.add("math_answer", [] { return 2; });
  CHECK(reg.get("math_answer")() == 2);
  CHECK(reg.contains("format"));
  try {
    reg.get("math");
    FAIL("expected an error");
  } catch (const rlft::Error& e) {
    CHECK(std::string(e.what()) == "unknown reward 'math': known rewards are format, math_answer");
  }
  CHECK_THROWS_AS(reg.add("format", [] { return 3; }), rlft::Error);
}
