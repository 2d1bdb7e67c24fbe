#!/usr/bin/env bash
# Set up (or reuse) the project's virtual environment: pinned packages, jittor's offline oneDNN
# archive, and jittor's one-time compile. Idempotent: a second run only checks stamps.
# Usage: bash scripts/bootstrap.sh [base|test]      (env: PYTHON=python3.11, USS_VENV=path)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
profile=${1:-base}
venv=${USS_VENV:-$root/.venv}
python=${PYTHON:-python3}
log() { echo "[setup] $*"; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)

# The stamp records what was installed; a changed pin list or profile reinstalls.
stamp="$venv/.uss-$profile"
want=$(cat "$root/pyproject.toml" "$root/scripts/bootstrap.sh" | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  target="$root"
  [ "$profile" = test ] && target="$root[test]"
  log "installing pinned packages ($profile) into $venv"
  "${pip[@]}" install -e "$target" 2>&1 | grep -vE "^WARNING: Location .* is ignored" || true
  "$venv/bin/python" -c "import uss" || { echo "error: installing the package failed; see pip output above" >&2; exit 1; }
  # jittor-offline carries the oneDNN archive that jittor otherwise downloads at first import.
  "${pip[@]}" install --no-deps jittor-offline==0.0.7 2>&1 | grep -vE "^WARNING: Location .* is ignored" || true
  echo "$want" > "$stamp"
fi

# The first import of jittor compiles its core (~2 minutes); later imports reuse the cache. The stamp names the
# compiler set-up (uss/_environment.py, uss/ccguard.py): after a change the core recompiles here, not in a later run.
warm="$venv/.uss-jittor-warm"
warm_want=$(cat "$root"/src/uss/{_environment.py,ccguard.py,bin/g++} | sha256sum | cut -c1-16)
if [ "$(cat "$warm" 2>/dev/null)" != "$warm_want" ]; then
  log "compiling jittor once (about 2 minutes; log in $venv/jittor-compile.log)"
  if ! "$venv/bin/python" -c "import uss, jittor; jittor.flags.use_cuda = jittor.has_cuda; print(jittor.__version__)" \
      > "$venv/jittor-compile.log" 2>&1; then
    tail -20 "$venv/jittor-compile.log" >&2
    echo "error: importing jittor failed (full log: $venv/jittor-compile.log)" >&2
    exit 1
  fi
  echo "$warm_want" > "$warm"
fi
log "environment ready: $venv"
