#!/usr/bin/env bash
# Results-table rows that score the ResNet-18 pseudo labels themselves on validation and test (no training):
#   $RUNS/rows/labels           the labels as the pipeline makes them (pixel attention above the swept threshold,
#                               nearest k-means centroid) -- what fine-tuning learns from
#   $RUNS/rows/labels_true_fg   ceiling: the same cluster ids inside the TRUE foreground (ground-truth masks)
# Their gap is what the attention / threshold loses; the second row's distance from 100 is what the clustering
# loses. Needs train_2.sh. Same DATA / RUNS as train_*.sh; rerunning continues.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# ---- hyperparameters (all of them) ----------------------------------------------------------
if [ "$PRESET" = demo ]; then
  LABELS=(--short-side 64)
else
  LABELS=(--short-side 256)  # PASS: labels at short side 256
fi
# ----------------------------------------------------------------------------------------------

dir=$RUNS/r18
for foreground in attention oracle; do
  if [ $foreground = attention ]; then row=$RUNS/rows/labels; else row=$RUNS/rows/labels_true_fg; fi
  stage "pseudo labels on validation and test ($foreground foreground) -> $row"
  for split in validation test; do
    "$PY" pseudo_labels.py generate --data "$DATA" --split $split --foreground $foreground \
        --pretrained "$dir/pixel_attention/checkpoint.safetensors" --cluster-dir "$dir/cluster" --out "$row/$split" \
        "${LABELS[@]}"
  done
  "$PY" -m uss.evaluate --data "$DATA" --split validation --pred "$row/validation" --match auto \
      --save-match "$row/match.json" --out "$row/validation.json" --quiet --no-per-class
  "$PY" -m uss.evaluate --data "$DATA" --split test --pred "$row/test" --match "$row/match.json" \
      --out "$row/test.json" --quiet --no-per-class
done
