#!/usr/bin/env bash
# Installs what rlft needs on Debian 12, and nothing when everything is there (quiet then).
#   scripts/setup.sh          build and run dependencies
#   scripts/setup.sh --test   also what the tests need (Python reference, Node tooling)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libgloo-dev libyaml-cpp-dev libfmt-dev libsqlite3-dev doctest-dev
  nlohmann-json3-dev libpcre2-dev libcli11-dev libcpp-httplib-dev
  libopenblas0-pthread
)
test_packages=(python3 python3-torch python3-numpy python3-jinja2 sqlite3 chromium clang-format git)
with_tests=0
[[ "${1:-}" == "--test" ]] && with_tests=1
((with_tests)) && packages+=("${test_packages[@]}")
((with_tests)) && ! command -v node >/dev/null 2>&1 && packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node test tooling (reference tokenizers, the browser driver), pinned by its lock file.
if ((with_tests)) && [[ -f tests/js/package.json ]]; then
  if [[ ! -d tests/js/node_modules ]] || [[ tests/js/package-lock.json -nt tests/js/node_modules ]]; then
    echo "setup: installing Node test tooling (tests/js)"
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
fi
