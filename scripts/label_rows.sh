#!/usr/bin/env bash
# Results-table rows that score the ResNet-18 pseudo labels themselves on validation and test (no training):
#   $RUNS/rows/labels           the per-pixel labels as the pipeline makes them (pixel attention above the swept
#                               threshold, nearest k-means centroid) -- what the PASS baseline learns from
#   $RUNS/rows/labels_true_fg   ceiling: the same cluster ids inside the TRUE foreground (ground-truth masks)
#   $RUNS/rows/labels_mask      the mask labels of train_3.sh (its regions, its swept threshold) -- what the
#                               mask-label rows learn from
#   $RUNS/rows/labels_label_free  the per-pixel labels with the label-free threshold (no labels read to choose it:
#                               uss.labeling.label_free on the train images) in place of the validation sweep's
#   $RUNS/rows/colour_only      reference: the same foreground as $RUNS/rows/labels, labelled by hue histogram
#                               alone (python -m uss.baselines --foreground); needs the train per-pixel labels
#                               of `scripts/linear_head_row.sh pixel`
# The first two rows' gap is what the attention / threshold loses; the second row's distance from 100 is what the
# clustering loses; a head row below the labels it learnt from is what fine-tuning loses. Needs train_2.sh (and
# train_3.sh's mask sweep for the last row: `bash scripts/label_rows.sh mask`). `attention` makes the first row only
# (demo.sh's random-init reference runs it with RUNS=$RUNS/random_init). Same DATA / RUNS / PROPOSER as train_*.sh;
# rerunning continues.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# ---- hyperparameters (all of them) ----------------------------------------------------------
if [ "$PRESET" = demo ]; then
  LABELS=(--short-side 64)
  PROPOSER=${PROPOSER:-superpixel}  # as train_3.sh
else
  LABELS=(--short-side 256)  # PASS: labels at short side 256
  PROPOSER=${PROPOSER:-sam}
fi
# ----------------------------------------------------------------------------------------------

KIND=${1:-pixel}
case "$KIND" in pixel) ROWS=(attention oracle) ;; attention) ROWS=(attention) ;; mask) ROWS=(mask) ;;
  colour) ROWS=(colour) ;; label-free) ROWS=(label_free) ;;
  *) echo "error: scripts/label_rows.sh takes 'pixel', 'attention', 'mask', 'colour' or 'label-free', got '$KIND'" >&2
     exit 2 ;;
esac
region_options

dir=$RUNS/r18
score() {  # score ROW: evaluate ROW/validation (Hungarian match) and ROW/test (that match)
  "$PY" -m uss.evaluation --data "$DATA" --split validation --pred "$1/validation" --match auto \
      --save-match "$1/match.json" --out "$1/validation.json" --quiet --no-per-class
  "$PY" -m uss.evaluation --data "$DATA" --split test --pred "$1/test" --match "$1/match.json" \
      --out "$1/test.json" --quiet --no-per-class
}
for source in "${ROWS[@]}"; do
  case $source in attention) row=$RUNS/rows/labels ;; oracle) row=$RUNS/rows/labels_true_fg ;;
    mask) row=$RUNS/rows/labels_mask ;; colour) row=$RUNS/rows/colour_only ;;
    label_free) row=$RUNS/rows/labels_label_free ;; esac
  stage "pseudo labels on validation and test ($source) -> $row"
  for split in validation test; do
    if [ $source = colour ]; then
      "$PY" -m uss.baselines --data "$DATA" --split $split --foreground "$RUNS/rows/labels/$split" \
          --train-foreground "$dir/pseudo_labels_pixel" --out "$row/$split"
    elif [ $source = label_free ]; then
      [ -f "$dir/label_free/threshold.json" ] || run_python pseudo_labels.py label-free --data "$DATA" \
          --pretrained "$dir/pixel_attention/checkpoint.safetensors" --cluster-dir "$dir/cluster" --out "$dir/label_free" \
          "${LABELS[@]}"
      run_python pseudo_labels.py generate --data "$DATA" --split $split --pretrained "$dir/pixel_attention/checkpoint.safetensors" \
          --cluster-dir "$dir/label_free" --centroids "$dir/cluster/centroids.npy" --out "$row/$split" "${LABELS[@]}"
    elif [ $source = mask ]; then
      run_python sam_refine.py generate --data "$DATA" --split $split --pretrained "$dir/pixel_attention/checkpoint.safetensors" \
          --cluster-dir "$dir/cluster" --sweep-dir "$dir/mask_sweep" --out "$row/$split" "${REGIONS[@]}" "${LABELS[@]}"
    else
      run_python pseudo_labels.py generate --data "$DATA" --split $split --foreground $source \
          --pretrained "$dir/pixel_attention/checkpoint.safetensors" --cluster-dir "$dir/cluster" --out "$row/$split" \
          "${LABELS[@]}"
    fi
  done
  score "$row"
done
