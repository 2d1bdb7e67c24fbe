#!/usr/bin/env bash
# Run the test suite in the project's own environment (set up on first use). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash scripts/bootstrap.sh test

# need WHAT SKIP_VARIABLE COMMAND... -- PACKAGE...: install the Debian packages when a command is missing (as root,
# Debian/Ubuntu), else stop with what to install; SKIP_VARIABLE=1 skips the test that needs them instead.
need() {
  local what=$1 skip=$2 commands=() packages=()
  shift 2
  while [ "$1" != -- ]; do commands+=("$1"); shift; done
  shift
  packages=("$@")
  [ "${!skip:-0}" = 1 ] && return
  local missing=0 command
  for command in "${commands[@]}"; do command -v "$command" >/dev/null 2>&1 || missing=1; done
  [ $missing = 0 ] && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing ${packages[*]} for $what"
    local log
    log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"; } \
        >"$log" 2>&1; then
      tail -20 "$log" >&2
      echo "error: installing ${packages[*]} failed (log: $log)" >&2
      exit 1
    fi
    rm -f "$log"
  else
    echo "error: $what needs ${commands[*]}, which is missing; install it, e.g." >&2
    echo "  sudo apt-get install ${packages[*]}     (Debian/Ubuntu)" >&2
    echo "or run with $skip=1 to skip that test" >&2
    exit 1
  fi
}
# tests/test_distributed.py runs 2 ranks under mpirun; jittor builds its MPI ops with mpicc.
need "the MPI test" USS_SKIP_MPI mpirun mpicc -- openmpi-bin libopenmpi-dev
# tests/test_gallery.py loads the gallery in headless Chromium.
need "the gallery's browser test" USS_SKIP_BROWSER chromium -- chromium
exec .venv/bin/python -m pytest -q "$@"
