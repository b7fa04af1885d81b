#!/usr/bin/env bash
# Run every example (examples/*.py) in its quick --small mode, as CI does: a smoke test that each
# one still runs end to end against the current library, not a check of its accuracy. Outputs go
# to a temporary folder (kept and printed when KEEP_OUTPUTS=1). Prints each example's time and
# fails if any example fails (after running all of them). Optional arguments: example names to
# run instead of all, e.g. `bash scripts/examples.sh two_moons lotka_volterra`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg

if [ "$#" -gt 0 ]; then
  scripts=()
  for name in "$@"; do scripts+=("examples/${name%.py}.py"); done
else
  scripts=(examples/*.py)
fi

out="$(mktemp -d "${TMPDIR:-/tmp}/gensbi_eqx_examples.XXXXXX")"
if [ "${KEEP_OUTPUTS:-0}" = 1 ]; then
  echo "outputs: $out"
else
  trap 'rm -rf "$out"' EXIT
fi

failed=()
summary=()
for script in "${scripts[@]}"; do
  name="$(basename "$script" .py)"
  echo "=== $name"
  start=$SECONDS
  if .venv/bin/python "$script" --small --no-progress --out "$out/$name"; then
    status=ok
  else
    status=FAILED
    failed+=("$name")
  fi
  summary+=("$(printf '%-22s %4d s  %s' "$name" $((SECONDS - start)) "$status")")
done

echo "=== summary (--small)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
