#!/usr/bin/env bash
# Set up (idempotent) and build the documentation site with warnings as errors.
# Usage: bash scripts/docs.sh [SITE_DIR]   (default: site/)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
stamp=.venv/.gensbi_eqx-docs-lock
want="$(cat requirements.lock requirements-docs.lock | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # The core pins constrain the resolver, so docs tools never move a library dependency.
  .venv/bin/python -m pip install --quiet -r requirements-docs.lock -c requirements.lock
  echo "$want" > "$stamp"
fi
export NO_MKDOCS_2_WARNING=1
exec .venv/bin/mkdocs build --strict --site-dir "${1:-site}"
