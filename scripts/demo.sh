#!/usr/bin/env bash
# Set up (idempotent) and run the two-moons demo. Extra arguments go to the demo script.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/two_moons.py "$@"
