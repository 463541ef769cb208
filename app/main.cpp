// The rlft executable: everything happens in app/cli.cpp; this file only makes sure the
// process runs on the fast BLAS path before any library does work.
#include "app/cli.h"
#include "core/blas.h"

int main(int argc, char** argv) {
  rlft::blas::ensure_fast_path(argc, argv);
  return rlft::app::run(argc, argv);
}
