#!/usr/bin/env bash
# Stage 3: mask-based pseudo labels (sam_refine.py) from the ResNet-18 (LABEL_ARCH=r50: ResNet-50) pixel-attention
# features and centroids of train_2.sh: the mask threshold (swept on validation, or label-free without ground truth,
# as train_2.sh), then one label PNG per training image.
#   bash train_3.sh                                                  demo: superpixel regions (no SAM weights)
#   DATA=/path/to/ImageNetS50 bash train_3.sh                        SAM ViT-B from weights/sam_vit_b_01ec64.pth
#   DATA=... PROPOSER=sam SAM_CHECKPOINT=weights/sam_vit_h_4b8939.pth SAM_TYPE=vit_h NGPU=8 bash train_3.sh
# Rerunning continues: finished label files are skipped, broken ones redone.
# Without train_1.sh / train_2.sh, from the challenge entry's weights/ (its README's shortcut):
#   PIXEL_ATTENTION=weights/infer_pixel_attnetion_checkpoint.pth.tar CENTROIDS=weights/centroids.npy \
#   PIXEL_THRESHOLD=0.34 SAM_CHECKPOINT=weights/sam_vit_b_01ec64.pth.tar DATA=... bash train_3.sh
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

# ---- hyperparameters (all of them) ----------------------------------------------------------
if [ "$PRESET" = demo ] || [ "$PRESET" = small ]; then
  PROPOSER=${PROPOSER:-superpixel}
  LABELS=(--short-side 64 --thresholds auto)
else
  PROPOSER=${PROPOSER:-sam}
  # Labels at short side 256 (PASS main:inference_pixel_attention.py, Resize(256)); the mask threshold swept over
  # the range PASS sweeps its pixel threshold (main:scripts/luss50_pass.sh: evaluator.py --min 0 --max 80).
  LABELS=(--short-side 256 --thresholds 0:0.80:0.01)
fi
# Region settings and the SAM checkpoint (SAM_CHECKPOINT, SAM_TYPE): scripts/common.sh's region_options, from
# src/uss/regions/settings.py.
# ----------------------------------------------------------------------------------------------

region_options
if [ "$PROPOSER" != sam ]; then
  echo "note: regions come from superpixels, standing in for SAM masks (PROPOSER=sam needs $SAM_CHECKPOINT)"
fi
dir=$RUNS/${LABEL_ARCH:-r18}  # LABEL_ARCH=r50: the labels from train_2's ResNet-50 (e.g. started from SwAV's weights)
COMMON=(--data "$TRAIN_DATA" --pretrained "${PIXEL_ATTENTION:-$dir/pixel_attention/checkpoint.safetensors}"
        --cluster-dir "$dir/cluster" --sweep-dir "$dir/mask_sweep" "${REGIONS[@]}" "${LABELS[@]}")
if [ -n "${CENTROIDS:-}" ]; then COMMON+=(--centroids "$CENTROIDS"); fi
if [ -n "${PIXEL_THRESHOLD:-}" ]; then COMMON+=(--pixel-threshold "$PIXEL_THRESHOLD"); fi

stage "mask threshold ($THRESHOLD, $PROPOSER regions) -> $dir/mask_sweep/threshold.json"
if [ -f "$dir/mask_sweep/threshold.json" ]; then
  echo "complete: $dir/mask_sweep/threshold.json"
else
  run_python sam_refine.py "$THRESHOLD" "${COMMON[@]}"
fi
stage "mask pseudo labels for the training split -> $dir/pseudo_labels_mask"
launch sam_refine.py generate "${COMMON[@]}" --out "$dir/pseudo_labels_mask" "${ALLOW_FAILURES[@]}" \
    "${CRF_LABELS[@]}"

stage "chosen thresholds (with a sweep: the validation mIoU of the labels themselves)"
for f in "$dir/cluster/threshold.json" "$dir/mask_sweep/threshold.json"; do
  [ -f "$f" ] || continue
  "$PY" -m uss.labeling.threshold "$f"
done
