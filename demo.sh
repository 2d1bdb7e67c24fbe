#!/usr/bin/env bash
# The whole job on the embedded demo dataset, from a fresh clone: set-up, data, training stages,
# evaluation and the results table. Idempotent: a rerun reuses the environment, the dataset and
# every finished stage. Stage wall times go to $RUNS/timings.tsv, the table to $RUNS/results.md.
#   DEMO_SEED=1 DATA=data/toy_seed1 RUNS=runs/demo_seed1 bash demo.sh   the same on another draw of the demo data
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash scripts/bootstrap.sh base
export PY=.venv/bin/python DATA=${DATA:-data/toy} RUNS=${RUNS:-runs/demo} PRESET=demo
# The true train masks, for the ceiling rows only: outside $DATA, which is all an unsupervised stage reads.
TRUE_MASKS=${TRUE_MASKS:-${DATA%/}-true-train-masks}
mkdir -p "$RUNS"

timed() {  # timed NAME COMMAND...: run it and record its wall time
  local name=$1 start
  shift
  start=$(date +%s)
  "$@"
  printf '%s\t%s\n' "$name" "$(( $(date +%s) - start ))" >> "$RUNS/timings.tsv"
}
: > "$RUNS/timings.tsv"

echo "== demo dataset: $DATA"
timed "dataset" $PY -m uss.data.toy --out "$DATA" --seed "${DEMO_SEED:-0}" --oracle-masks "$TRUE_MASKS"

echo "== reference row: all-background prediction"
# Validation computes the Hungarian match; the test split reuses it (the benchmark's protocol).
bg=$RUNS/rows/all_background
for split in validation test; do
  $PY -m uss.baselines --data "$DATA" --split "$split" --out "$bg/$split"
done
$PY -m uss.evaluation --data "$DATA" --split validation --pred "$bg/validation" --match auto \
    --save-match "$bg/match.json" --out "$bg/validation.json" --quiet --no-per-class
$PY -m uss.evaluation --data "$DATA" --split test --pred "$bg/test" --match "$bg/match.json" \
    --out "$bg/test.json" --quiet --no-per-class

timed "train_1 (pretraining)" bash train_1.sh
timed "train_2 (attention, k-means, sweep)" bash train_2.sh
timed "rows: the per-pixel pseudo labels themselves, and inside the true foreground" bash scripts/label_rows.sh pixel
timed "row: the per-pixel pseudo labels with the label-free threshold" bash scripts/label_rows.sh label-free
timed "row: PASS baseline (per-pixel labels, 1x1 head)" bash scripts/linear_head_row.sh pixel
timed "reference: colour only (the per-pixel labels' foreground, labelled by hue)" bash scripts/label_rows.sh colour
# What pretraining adds: the same attention, k-means and sweep stages on the initial (random) weights.
timed "reference: per-pixel pseudo labels of a random-init backbone" env RUNS="$RUNS/random_init" \
    bash -c 'PRETRAIN_EXTRA="--epochs 0" bash train_1.sh && bash train_2.sh && bash scripts/label_rows.sh attention'
timed "train_3 (mask labels)" bash train_3.sh
timed "row: the mask pseudo labels themselves" bash scripts/label_rows.sh mask
timed "row: + mask labels (1x1 head)" bash scripts/linear_head_row.sh mask
timed "train_4 (UPerNet, test.py)" bash train_4.sh
# The same UPerNet checkpoint as train_4.sh's test.py, predicted without the test-time mask refinement.
timed "row: + UPerNet (no refinement)" bash scripts/predict_row.sh "$RUNS/r18/finetune_upernet/checkpoint.safetensors" \
    "$RUNS/rows/upernet" --short-side 64
# Ceiling: train_4.sh's recipe (UPerNet fine-tuning, then test.py with refinement) on the true train masks.
timed "ceiling: UPerNet + refinement on the true train masks" env LABELS="$TRUE_MASKS" TAG=_true_masks bash train_4.sh

echo
echo "== results on the demo dataset (mIoU and F-measure, percent; test uses the validation match)"
$PY -m uss.demo_results --out "$RUNS/results.md" \
    --row "all-background" "$bg" \
    --row "PASS baseline (R18, 1x1 head, per-pixel labels)" "$RUNS/rows/pass_baseline" \
    --row "+ mask pseudo labels (R18, 1x1 head)" "$RUNS/rows/mask_labels" \
    --row "+ UPerNet (mask labels)" "$RUNS/rows/upernet" \
    --row "+ test-time mask refinement (test.py): the final result" "$RUNS/test_py" \
    --row "diagnostic: the per-pixel pseudo labels themselves" "$RUNS/rows/labels" \
    --row "diagnostic: the same with the label-free threshold (no labels read)" "$RUNS/rows/labels_label_free" \
    --row "reference: per-pixel pseudo labels of a random-init backbone (what pretraining adds)" \
        "$RUNS/random_init/rows/labels" \
    --row "reference: colour only (same foreground, labelled by hue histogram)" "$RUNS/rows/colour_only" \
    --row "diagnostic: the mask pseudo labels themselves" "$RUNS/rows/labels_mask" \
    --row "ceiling (uses true masks): pseudo labels inside the true foreground" "$RUNS/rows/labels_true_fg" \
    --row "ceiling (uses true masks): final recipe fine-tuned on the true train masks" "$RUNS/test_py_true_masks"
$PY -m uss.report_figure --data "$DATA" --split test --pred "$RUNS/test_py/test" --match "$RUNS/test_py/test/match.json" \
    --result "$RUNS/test_py/test_result.json" --curve "$RUNS/r18/cluster/threshold_curve.png" \
    --curve "$RUNS/r18/mask_sweep/threshold_curve.png" --out "$RUNS/report.png"
$PY -m uss.gallery --data "$DATA" --split test --pred "$RUNS/test_py/test" --match "$RUNS/test_py/test/match.json" \
    --out "$RUNS/gallery"
echo "table: $RUNS/results.md; report image: $RUNS/report.png; gallery: $RUNS/gallery/index.html;" \
    "stage wall times: $RUNS/timings.tsv"
