#!/usr/bin/env bash
# Configures and builds rlft in Release. BUILD_DIR (default build/) and CMAKE_ARGS may be set;
# CMAKE_PREFIX_PATH selects another LibTorch (e.g. a CUDA wheel's).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
# Configure once; again whenever CMAKE_ARGS is given (its values then replace the cached ones).
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
elif [[ -n "${CMAKE_ARGS:-}" ]]; then
  cmake -S . -B "$build_dir" ${CMAKE_ARGS} >/dev/null
fi
cmake --build "$build_dir" --parallel "$(nproc)"
