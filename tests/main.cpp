// The doctest runner for every suite. Like the rlft binary, a test process first makes sure
// it runs on the fast BLAS path, so tests exercise the configuration users get.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "core/blas.h"

int main(int argc, char** argv) {
  rlft::blas::ensure_fast_path(argc, argv);
  doctest::Context context(argc, argv);
  return context.run();
}
