#!/usr/bin/env bash
# The README's first command on a fresh clone, as a new user runs it: no mold (a `mold` on PATH that
# fails if anything calls it), no server. Its SQLite output is then checked against DataFusion's own
# answer by the quickstart test. The clone shares the cargo target directory (CARGO_TARGET_DIR), as
# CI's time allows; the first build's time on a clean one is in the README.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone -q "$root" "$work/ferry"
mkdir -p "$work/no-mold"
printf '#!/bin/sh\necho "mold was called: the build must not need it" >&2\nexit 1\n' > "$work/no-mold/mold"
chmod +x "$work/no-mold/mold"
cd "$work/ferry"
PATH="$work/no-mold:$PATH" cargo run -q -p ferry -- run pipelines/quickstart.toml
cd "$root"
FERRY_QUICKSTART_OUT="$work/ferry/pipelines" \
  cargo test -q --workspace --test e2e the_readmes_first_command_lands_what_datafusion_computes
