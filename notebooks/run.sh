#!/usr/bin/env bash
# Runs every notebook top to bottom, headless, in the order of the workflow (as CI does):
#   FERRY=target/debug/ferry bash notebooks/run.sh
# The pinned packages of requirements.txt go into a virtual environment (FERRY_VENV, by default
# ~/.cache/ferry-venv), made again when requirements.txt changes. The notebooks share one workspace
# (FERRY_WORK, by default a new temporary folder); the executed copies, with their outputs, are
# saved beside it in executed/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${FERRY_VENV:-$HOME/.cache/ferry-venv}"
stamp="$(sha256sum "$here/requirements.txt" | cut -c1-16)"
if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  echo "$stamp" > "$venv/.requirements"
fi
export FERRY="${FERRY:-$(command -v ferry || true)}"
if [ ! -x "$FERRY" ]; then
  echo "error: no ferry binary: build it (cargo build -p ferry) and set FERRY=target/debug/ferry" >&2
  exit 2
fi
FERRY="$(cd "$(dirname "$FERRY")" && pwd)/$(basename "$FERRY")"
export FERRY_WORK="${FERRY_WORK:-$(mktemp -d)/work}"
executed="$(dirname "$FERRY_WORK")/executed"
mkdir -p "$executed"
# 01 starts the emulator and 03 stops it; a notebook that fails midway must not leave it running.
trap '[ -f "$FERRY_WORK/emulator.pid" ] && kill -- "-$(cat "$FERRY_WORK/emulator.pid")" 2>/dev/null || true' EXIT
run() {
  "$venv/bin/jupyter" nbconvert --to notebook --execute --ExecutePreprocessor.timeout=300 \
    --output-dir "$executed" "$here/$1.ipynb" 2>&1 | grep -v -e '^\[NbConvertApp\]' -e 'Kernel is running over TCP' || true
  # nbconvert's exit code is lost in the pipe: its executed copy says whether every cell ran.
  "$venv/bin/python" - "$executed/$1.ipynb" <<'PY'
import json, os, sys
if not os.path.exists(sys.argv[1]):
    sys.exit(f'{sys.argv[1]}: the notebook stopped at an error (above)')
cells = json.load(open(sys.argv[1]))['cells']
errors = [o for c in cells if c['cell_type'] == 'code' for o in c.get('outputs', []) if o.get('output_type') == 'error']
ran = all(c.get('execution_count') for c in cells if c['cell_type'] == 'code')
sys.exit(f'{sys.argv[1]}: {errors[0]["ename"]}: {errors[0]["evalue"]}' if errors else None if ran else f'{sys.argv[1]}: not every cell ran')
PY
  echo "notebook $1: every cell ran"
}
for notebook in 01-initialize 02-ingest-dropbox 03-migrate 04-dashboard; do
  [ -f "$executed/$notebook.ipynb" ] && rm "$executed/$notebook.ipynb"
  run "$notebook"
done
FERRY_STATE_DIR="$FERRY_WORK/pipelines/.ferry" run bookkeeping
