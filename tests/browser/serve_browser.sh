#!/usr/bin/env bash
# ctest serve_browser: `rlft serve` in a real headless Chromium (tests/js/serve_browser.js).
# Fails loudly, never skips, when a piece is missing: scripts/setup.sh --test installs them.
#   tests/browser/serve_browser.sh RLFT_BINARY ARTIFACT_DIR
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
rlft="${1:?usage: serve_browser.sh RLFT_BINARY ARTIFACT_DIR}"
out="${2:?usage: serve_browser.sh RLFT_BINARY ARTIFACT_DIR}"
missing=()
command -v node >/dev/null 2>&1 || missing+=("node (apt-get install nodejs)")
[[ -x /usr/bin/chromium ]] || missing+=("/usr/bin/chromium (apt-get install chromium)")
command -v sqlite3 >/dev/null 2>&1 || missing+=("sqlite3 (apt-get install sqlite3)")
[[ -f "$root/tests/js/node_modules/playwright-core/package.json" ]] ||
  missing+=("tests/js/node_modules/playwright-core (cd tests/js && npm ci)")
if ((${#missing[@]})); then
  echo "serve_browser: FAILED: missing ${missing[*]}; run scripts/setup.sh --test" >&2
  exit 1
fi
exec node "$root/tests/js/serve_browser.js" "$rlft" "$out"
