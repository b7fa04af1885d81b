#!/usr/bin/env bash
# Create .venv (if needed) with the pinned dependencies of requirements.lock and the package
# installed in editable mode. Idempotent: does nothing when the lock file has not changed.
# jax 0.12 needs Python >= 3.12: PYTHON, python3.13, python3.12, python3, or a pyenv-installed
# 3.12+, the first that is new enough.
set -euo pipefail
cd "$(dirname "$0")/.."

new_enough() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; }

find_python() {
  local candidate
  for candidate in ${PYTHON:-} python3.13 python3.12 python3 \
      "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 && new_enough "$candidate"; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

if [ -x .venv/bin/python ] && ! new_enough .venv/bin/python; then
  echo "setup: .venv has Python < 3.12; recreating it." >&2
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  if ! python="$(find_python)"; then
    echo "setup: gensbi_eqx needs Python >= 3.12 (jax 0.12); found none among PYTHON," \
      "python3.13, python3.12, python3 and pyenv's versions. Install one, or set PYTHON." >&2
    exit 1
  fi
  "$python" -m venv .venv
fi
stamp=.venv/.gensbi_eqx-lock
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.lock
  .venv/bin/python -m pip install --quiet --no-deps -e .
  echo "$want" > "$stamp"
fi
