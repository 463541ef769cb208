#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to rlft's default job: install what is missing,
# build in Release, run the job.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec "${BUILD_DIR:-build}/rlft" doctor "$@"
