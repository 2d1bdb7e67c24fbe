#!/usr/bin/env bash
# Run the test suite in the project's own environment (set up on first use). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash scripts/bootstrap.sh test

# tests/test_distributed.py runs 2 ranks under mpirun; jittor builds its MPI ops with mpicc. Install Open MPI when
# missing (as root, Debian/Ubuntu), else stop with what to install. USS_SKIP_MPI=1 skips the MPI test instead.
if [ "${USS_SKIP_MPI:-0}" != 1 ] && ! { command -v mpirun && command -v mpicc; } >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing Open MPI (openmpi-bin libopenmpi-dev) for the MPI test"
    mpi_log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin libopenmpi-dev; } \
        >"$mpi_log" 2>&1; then
      tail -20 "$mpi_log" >&2
      echo "error: installing Open MPI failed (log: $mpi_log)" >&2
      exit 1
    fi
    rm -f "$mpi_log"
  else
    echo "error: the MPI test needs Open MPI (mpirun and mpicc), which is missing; install it, e.g." >&2
    echo "  sudo apt-get install openmpi-bin libopenmpi-dev     (Debian/Ubuntu)" >&2
    echo "or run with USS_SKIP_MPI=1 to skip that test" >&2
    exit 1
  fi
fi
exec .venv/bin/python -m pytest -q "$@"
