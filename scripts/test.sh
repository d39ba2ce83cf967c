#!/usr/bin/env bash
# The test command of README.md: installs what is missing, then runs the whole test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
deno=$(bash scripts/ensure_tools.sh | tail -n 1)
export PATH="$(dirname "$deno"):$PATH"
deno install --frozen >/dev/null
deno task test "$@"
