#!/usr/bin/env bash
# The demo's downstream stages with good inputs, at a budget the 25-minute demo does not have: is each stage able to
# do its job, and how far does the demo's budget leave it from that? (benchmarks/demo_regime.md, section 8)
#   1. fine-tuning: the 1x1 head (scripts/linear_head_row.sh's demo recipe, train_1's backbone) on the true train
#      masks for $EPOCHS epochs instead of 4                                 -> $OUT/rows/linear_true_masks
#   2. the label stages on a backbone that segments: that fine-tuned backbone replaces the self-supervised one in
#      train_2.sh (pixel attention, k-means, threshold sweep) and scripts/label_rows.sh pixel
#                                                                            -> $OUT/rows/labels, $OUT/rows/labels_true_fg
#   3. the label-free threshold on that backbone (no labels read to choose it)  -> $OUT/rows/labels_label_free
#   4. the rest of the method on that backbone's labels, fine-tuning train_1's self-supervised backbone as the demo
#      does: the PASS baseline (1x1 head), train_3.sh's mask labels, train_4.sh's UPerNet with and without the
#      test-time refinement: how far the method goes once its features are as good as supervised ones
#                                                      -> $OUT/rows/{pass_baseline,labels_mask,upernet}, $OUT/test_py
#   5. dense-CRF refinement of the per-pixel labels of both backbones, validation and test (benchmarks/crf.py)
# Prints a table with the demo's own rows next to these, the attention AUC and the k-means NMI of both backbones.
# Run after demo.sh (it needs $RUNS/r18/pretrain, train_2's outputs and the true train masks); rerunning continues.
# 14 min on an idle 2-core machine at the default EPOCHS=40 (fine-tuning 7 min, train_2 and the label rows 2,
# step 4 4.5, the CRF 2.5).
#   bash benchmarks/stage_ceilings.sh                      OUT defaults to $RUNS/stage_ceilings
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
EPOCHS=${EPOCHS:-40}
OUT=${OUT:-$RUNS/stage_ceilings}
pretrain=$RUNS/r18/pretrain/checkpoint.safetensors
for need in "$pretrain" "$RUNS/r18/pixel_attention/checkpoint.safetensors" "$RUNS/rows/labels/test.json"; do
  [ -e "$need" ] || { echo "error: $need not found; run demo.sh first" >&2; exit 2; }
done

stage "fine-tuning with good inputs: 1x1 head, $EPOCHS epochs on the true train masks -> $OUT"
PRETRAINED_R18=$pretrain RUNS=$OUT FINETUNE_EXTRA="--epochs $EPOCHS" bash scripts/linear_head_row.sh true
good=$OUT/good_backbone.safetensors
tuned=$OUT/r18/finetune_linear_true/checkpoint.safetensors
[ -f "$good" ] || "$PY" benchmarks/swap_backbone.py "$pretrain" "$tuned" "$good"

stage "label stages with good inputs: train_2.sh and the label rows on the fine-tuned backbone -> $OUT"
PRETRAINED_R18=$good RUNS=$OUT bash train_2.sh
RUNS=$OUT bash scripts/label_rows.sh pixel
RUNS=$OUT bash scripts/label_rows.sh label-free
[ -f "$RUNS/rows/labels_label_free/test.json" ] || bash scripts/label_rows.sh label-free

stage "the method on the fine-tuned backbone's labels, fine-tuning the self-supervised backbone -> $OUT"
PRETRAINED_R18=$pretrain RUNS=$OUT bash scripts/linear_head_row.sh pixel
RUNS=$OUT bash train_3.sh
RUNS=$OUT bash scripts/label_rows.sh mask
PRETRAINED_R18=$pretrain RUNS=$OUT bash train_4.sh
RUNS=$OUT bash scripts/predict_row.sh "$OUT/r18/finetune_upernet/checkpoint.safetensors" "$OUT/rows/upernet" \
    --short-side 64

stage "summary"
"$PY" -m uss.demo_results --out "$OUT/results.md" \
    --row "demo: per-pixel pseudo labels (self-supervised backbone)" "$RUNS/rows/labels" \
    --row "demo: those labels' ids inside the true foreground" "$RUNS/rows/labels_true_fg" \
    --row "demo: the same with the label-free threshold" "$RUNS/rows/labels_label_free" \
    --row "per-pixel pseudo labels on the fine-tuned backbone" "$OUT/rows/labels" \
    --row "the same with the label-free threshold" "$OUT/rows/labels_label_free" \
    --row "those labels' ids inside the true foreground" "$OUT/rows/labels_true_fg" \
    --row "demo: PASS baseline" "$RUNS/rows/pass_baseline" \
    --row "PASS baseline on the fine-tuned backbone's labels" "$OUT/rows/pass_baseline" \
    --row "demo: the mask pseudo labels" "$RUNS/rows/labels_mask" \
    --row "mask pseudo labels on the fine-tuned backbone" "$OUT/rows/labels_mask" \
    --row "demo: + UPerNet (no refinement)" "$RUNS/rows/upernet" \
    --row "+ UPerNet on the fine-tuned backbone's mask labels" "$OUT/rows/upernet" \
    --row "demo: final row (UPerNet + refinement)" "$RUNS/test_py" \
    --row "final recipe on the fine-tuned backbone's mask labels" "$OUT/test_py" \
    --row "demo: final recipe (train_4.sh) on the true train masks" "$RUNS/test_py_true_masks" \
    --row "1x1 head, $EPOCHS epochs on the true train masks" "$OUT/rows/linear_true_masks"
for run in "$RUNS" "$OUT"; do
  echo "$run/r18: attention-pooled k-means NMI $("$PY" -c "import json,sys; print(round(json.load(open(sys.argv[1]))['nmi'], 3))" \
      "$run/r18/cluster/cluster.json")"
  "$PY" benchmarks/attention_quality.py "$run/r18/pixel_attention/checkpoint.safetensors" --data "$DATA"
done
for run in "$RUNS" "$OUT"; do
  for split in validation test; do
    echo "dense CRF on $run/rows/labels/$split:"
    "$PY" benchmarks/crf.py --data "$DATA" --split $split --pred "$run/rows/labels/$split" --out "$OUT/crf/$(basename "$run")_$split"
  done
done
