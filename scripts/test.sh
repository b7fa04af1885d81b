#!/usr/bin/env bash
# Set up (idempotent) and run the test suite. Extra arguments go to pytest. Two worker
# processes, each taking whole test files (so a module's trained fixtures are built once):
# `-n 0` runs in one process. Both workers share one compilation cache for the run: many tests
# compile the same small programs, and XLA's compile (seconds per train step on a CPU) is most
# of their time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
export JAX_COMPILATION_CACHE_DIR="$cache" JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0
.venv/bin/python -m pytest -n 2 --dist loadfile "$@"
