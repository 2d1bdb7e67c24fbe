#!/usr/bin/env bash
# Run the test suite in the project's own environment (set up on first use). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash scripts/bootstrap.sh test
exec .venv/bin/python -m pytest -q "$@"
