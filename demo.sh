#!/usr/bin/env bash
# The whole job on the embedded demo dataset, from a fresh clone: set-up, data, evaluation.
# Idempotent: a rerun reuses the environment, the dataset and every finished stage.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash scripts/bootstrap.sh base
py=.venv/bin/python
DATA=${DATA:-data/toy}
RUNS=${RUNS:-runs/demo}

echo "== demo dataset: $DATA"
$py -m uss.data.toy --out "$DATA"

echo "== reference row: all-background prediction"
# Validation computes the Hungarian match; the test split reuses it (the benchmark's protocol).
bg=$RUNS/all_background
for split in validation test; do
  $py -m uss.baselines --data "$DATA" --split "$split" --out "$bg/$split"
done
$py -m uss.evaluate --data "$DATA" --split validation --pred "$bg/validation" --match auto \
    --save-match "$bg/match.json" --out "$bg/validation.json" --quiet
$py -m uss.evaluate --data "$DATA" --split test --pred "$bg/test" --match "$bg/match.json" \
    --out "$bg/test.json" --quiet
