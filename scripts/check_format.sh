#!/usr/bin/env bash
# Fails, listing the files, when a tracked C++ file differs from what clang-format (the
# committed .clang-format) makes of it. `scripts/check_format.sh --fix` formats them instead.
# Run by ctest as the `format` test.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check_format: clang-format is not installed (scripts/setup.sh --test)"; exit 1; }
# The generated Unicode tables (tests/js/gen_unicode_tables.js) are data, not code.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.inc' | grep -v '^policy/tokenizer/unicode_tables.inc$')
else
  mapfile -t files < <(find app cmake core data policy reward rl rollout tests -path tests/js -prune -o \
    \( -name '*.cpp' -o -name '*.h' -o -name '*.inc' \) -print | grep -v 'unicode_tables.inc$' | sort)
fi
if [[ "${1:-}" == "--fix" ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
  echo "check_format: ${#bad[@]} file(s) are not clang-formatted (scripts/check_format.sh --fix):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "check_format: ${#files[@]} files clang-formatted"
