#!/usr/bin/env bash
# The PASS baseline row: per-pixel pseudo labels for the training split (ResNet-18 pixel attention,
# centroids and the swept threshold from train_2.sh), fine-tuning of the 1x1 head on them, then
# prediction + evaluation on validation (Hungarian match) and test (that match).
#   bash scripts/pass_baseline.sh          (after train_1.sh and train_2.sh; same DATA / NGPU / RUNS)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# ---- hyperparameters (all of them) ----------------------------------------------------------
if [ "$PRESET" = demo ]; then
  LABELS=(--short-side 96)
  FINETUNE=(--arch resnet18 --head linear --epochs 8 --batch-size 32 --crop-size 96 --min-scale 0.3
            --label-scale 0.5 --base-lr 0.05 --final-lr 0.0005 --wd 1e-4 --workers 2 --seed 31)
  INFER=(--short-side 96)
else
  # PASS, ImageNet-S50: labels at short side 256; 20 epochs, lr 0.6 -> 0.0006, crop 224, labels / 2.
  LABELS=(--short-side 256)
  FINETUNE=(--arch resnet18 --head linear --epochs 20 --batch-size 256 --crop-size 224 --min-scale 0.08
            --label-scale 0.5 --base-lr 0.6 --final-lr 0.0006 --wd 1e-6 --workers 8 --seed 31)
  INFER=(--short-side 256)
fi
# ----------------------------------------------------------------------------------------------

dir=$RUNS/r18
stage "per-pixel pseudo labels (train) -> $dir/pseudo_labels_pixel"
launch pseudo_labels.py generate --data "$DATA" --pretrained "$dir/pixel_attention/checkpoint.pth.tar" \
    --cluster-dir "$dir/cluster" --out "$dir/pseudo_labels_pixel" "${LABELS[@]}"
stage "fine-tune the 1x1 head on per-pixel labels -> $dir/finetune_linear"
launch main_pixel_finetuning.py --data "$DATA" --pseudo-labels "$dir/pseudo_labels_pixel" \
    --pretrained "$dir/pretrain/checkpoint.pth.tar" --dump-path "$dir/finetune_linear" "${FINETUNE[@]}"
out=$RUNS/rows/pass_baseline
stage "PASS baseline: predict + evaluate -> $out"
"$PY" -m uss.stages.inference --checkpoint "$dir/finetune_linear/checkpoint.pth.tar" --data "$DATA" \
    --split validation --out "$out/validation" --match auto --result "$out/validation.json" --quiet "${INFER[@]}"
if [ -d "$DATA/test-segmentation" ]; then
  "$PY" -m uss.stages.inference --checkpoint "$dir/finetune_linear/checkpoint.pth.tar" --data "$DATA" \
      --split test --out "$out/test" --match "$out/validation/match.json" --result "$out/test.json" --quiet "${INFER[@]}"
else
  "$PY" -m uss.stages.inference --checkpoint "$dir/finetune_linear/checkpoint.pth.tar" --data "$DATA" \
      --split test --out "$out/test" --quiet "${INFER[@]}"
fi
