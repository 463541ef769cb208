#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to every test: install what is missing (tests'
# extras included), build, run every suite through ctest (the `format` test checks that the
# tree is clang-formatted). Exits non-zero on any failure. CI (.ci/run) adds -DRLFT_WERROR=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
scripts/build.sh
build_dir=${BUILD_DIR:-build}
ctest --test-dir "$build_dir" --output-on-failure --timeout 1500 "$@"
