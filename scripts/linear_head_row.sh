#!/usr/bin/env bash
# A results-table row with PASS's 1x1 head on ResNet-18: fine-tune on one kind of pseudo labels, then
# predict + evaluate on validation (Hungarian match) and test (that match). No test-time refinement.
#   bash scripts/linear_head_row.sh pixel   PASS baseline: per-pixel labels (made here from train_2.sh's
#                                           pixel attention, centroids and swept threshold)  -> $RUNS/rows/pass_baseline
#   bash scripts/linear_head_row.sh mask    mask labels of train_3.sh                         -> $RUNS/rows/mask_labels
#   bash scripts/linear_head_row.sh true    diagnostic: the true train masks ($TRUE_MASKS, default
#                                           $DATA-true-train-masks as demo.sh writes them)     -> $RUNS/rows/linear_true_masks
# Same DATA / NGPU / RUNS as train_*.sh; rerunning continues. PRETRAINED_R18 replaces train_1's backbone;
# FINETUNE_EXTRA adds arguments to main_pixel_finetuning.py (benchmarks/stage_ceilings.sh: "--epochs 40").
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LABEL_KIND=${1:-pixel}
case "$LABEL_KIND" in pixel) ROW=pass_baseline ;; mask) ROW=mask_labels ;; true) ROW=linear_true_masks ;;
  *) echo "error: scripts/linear_head_row.sh takes 'pixel', 'mask' or 'true', got '$LABEL_KIND'" >&2; exit 2 ;; esac

# ---- hyperparameters (all of them) ----------------------------------------------------------
if [ "$PRESET" = demo ]; then
  # The demo backbone of train_1.sh; plain SGD with the N(0, 0.01) classifier (the default --classifier-init).
  LABELS=(--short-side 64)
  # --workers 0 (in-process loading): on 2 cores loader processes cost more than they save (train_1.sh).
  FINETUNE=(--arch resnet18 --width 0.25 --stem small --head linear --epochs 4 --batch-size 32 --crop-size 64
            --min-scale 0.3 --label-scale 0.5 --base-lr 0.05 --final-lr 0.0005 --wd 1e-4 --workers 0 --seed 31
            --classifier-init normal --max-scale 1.0 --larc 0 --momentum 0.9 --schedule cosine --warmup-epochs 0)
  INFER=(--short-side 64 --max-pixels 1000000)
else
  # PASS's PyTorch recipe, ResNet-18 on ImageNet-S50: main:scripts/luss50_pass.sh (20 epochs, lr 0.6 -> 0.0006,
  # wd 1e-6, 8 GPUs x BATCH=32 = global batch 256, workers 8); LARC trust 0.001, clip off, from
  # main:main_pixel_finetuning.py, which also gives crop 224 at scale 0.08-1 (RandomResizedCropSemantic(224)),
  # labels / 2 (interpolate scale_factor 0.5) and the seed (options.py default 31). Labels and inference at
  # short side 256: main:inference_pixel_attention.py and main:inference.py (Resize(256)). The 1x1 classifier is
  # kaiming-initialised with every other conv, as PASS's main:src/resnet.py does.
  LABELS=(--short-side 256)
  FINETUNE=(--arch resnet18 --head linear --classifier-init kaiming --epochs 20 --batch-size 256 --crop-size 224 --min-scale 0.08
            --label-scale 0.5 --larc 0.001 --base-lr 0.6 --final-lr 0.0006 --warmup-epochs 0 --wd 1e-6 --workers 8
            --seed 31 --max-scale 1.0 --momentum 0.9 --schedule cosine)
  INFER=(--short-side 256 --max-pixels 1000000)
fi
# ----------------------------------------------------------------------------------------------

dir=$RUNS/r18
labels=$dir/pseudo_labels_$LABEL_KIND
if [ "$LABEL_KIND" = pixel ]; then
  stage "per-pixel pseudo labels (train) -> $labels"
  launch pseudo_labels.py generate --data "$DATA" --pretrained "$dir/pixel_attention/checkpoint.safetensors" \
      --cluster-dir "$dir/cluster" --out "$labels" "${LABELS[@]}" "${CRF_LABELS[@]}"
elif [ "$LABEL_KIND" = true ]; then
  labels=${TRUE_MASKS:-${DATA%/}-true-train-masks}
fi
if [ ! -d "$labels" ]; then
  case $LABEL_KIND in true) need="demo.sh first (it writes the true train masks), or set TRUE_MASKS" ;;
    *) need="train_3.sh first" ;; esac
  echo "error: $labels not found; run $need" >&2
  exit 2
fi
ckpt=$dir/finetune_linear_$LABEL_KIND/checkpoint.safetensors
stage "fine-tune the 1x1 head on $LABEL_KIND labels -> $dir/finetune_linear_$LABEL_KIND"
launch main_pixel_finetuning.py --data "$DATA" --pseudo-labels "$labels" \
    --pretrained "${PRETRAINED_R18:-$dir/pretrain/checkpoint.safetensors}" --dump-path "$dir/finetune_linear_$LABEL_KIND" \
    "${FINETUNE[@]}" ${FINETUNE_EXTRA:-}
bash "$ROOT/scripts/predict_row.sh" "$ckpt" "$RUNS/rows/$ROW" "${INFER[@]}"
