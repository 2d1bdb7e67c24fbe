#!/usr/bin/env bash
# Stage 4: UPerNet on ResNet-50 (initialised from train_1's ResNet-50 pretraining), fine-tuned on the mask
# pseudo labels of train_3.sh; then test.py on validation (computes the Hungarian match) and on the test
# split (uses it), with test-time refinement by the region proposer's masks, ending with result.zip.
#   bash train_4.sh                                   demo (superpixel regions)
#   DATA=/path/to/ImageNetS50 NGPU=8 bash train_4.sh  paper settings, SAM ViT-B from weights/sam_vit_b_01ec64.pth
# Same DATA / NGPU / RUNS / PROPOSER / SAM_CHECKPOINT as train_3.sh. Rerunning continues.
# PRETRAINED_R50 replaces train_1's ResNet-50 (read weights-only): the challenge entry's
# weights/train_pixelattention_checkpoint.pth.tar, PASS's pass50_pretrained.pth.tar, SwAV's
# swav_800ep_pretrain.pth.tar or DINO's dino_resnet50_pretrain.pth.
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

# ---- hyperparameters (all of them) ----------------------------------------------------------
if [ "$PRESET" = demo ]; then
  PROPOSER=${PROPOSER:-superpixel}
  FINETUNE=(--arch resnet50 --head upernet --epochs 4 --batch-size 16 --crop-size 96 --min-scale 0.3
            --label-scale 0.5 --base-lr 0.02 --final-lr 0.0002 --wd 1e-4 --workers 2 --seed 31)
  TEST=(--short-side 96)
  SUPERPIXEL=(--superpixel-method felzenszwalb --superpixel-scale 100 --superpixel-sigma 0.8 --superpixel-min-size 30)
  TEST_SPLIT=test
else
  PROPOSER=${PROPOSER:-sam}
  FINETUNE=(--arch resnet50 --head upernet --epochs 20 --batch-size 256 --crop-size 224 --min-scale 0.08
            --label-scale 0.5 --base-lr 0.6 --final-lr 0.0006 --wd 1e-6 --workers 8 --seed 31)
  TEST=(--short-side 256)
  SUPERPIXEL=(--superpixel-method felzenszwalb --superpixel-scale 300 --superpixel-sigma 0.8 --superpixel-min-size 200)
  TEST_SPLIT=${TEST_SPLIT:-test}
fi
SAM_CHECKPOINT=${SAM_CHECKPOINT:-weights/sam_vit_b_01ec64.pth}
SAM_TYPE=${SAM_TYPE:-vit_b}
SAM=(--sam-checkpoint "$SAM_CHECKPOINT" --sam-model-type "$SAM_TYPE" --points-per-side 64 --points-per-batch 64
     --pred-iou-thresh 0.86 --stability-score-thresh 0.92 --crop-n-layers 1 --crop-n-points-downscale-factor 2
     --min-mask-region-area 100)
# ----------------------------------------------------------------------------------------------

if [ "$PROPOSER" = sam ]; then REGIONS=(--proposer sam "${SAM[@]}"); else REGIONS=(--proposer superpixel "${SUPERPIXEL[@]}"); fi
ckpt=$RUNS/r50/finetune_upernet/checkpoint.safetensors
stage "fine-tune UPerNet (ResNet-50) on mask pseudo labels -> $RUNS/r50/finetune_upernet"
launch main_pixel_finetuning.py --data "$DATA" --pseudo-labels "$RUNS/r18/pseudo_labels_mask" \
    --pretrained "${PRETRAINED_R50:-$RUNS/r50/pretrain/checkpoint.safetensors}" --dump-path "$RUNS/r50/finetune_upernet" "${FINETUNE[@]}"

out=$RUNS/test_py
stage "test.py on validation (Hungarian match) -> $out/validation"
launch test.py --mode validation --data "$DATA" --checkpoint "$ckpt" --out "$out" "${REGIONS[@]}" "${TEST[@]}"
stage "test.py on $TEST_SPLIT (validation match, submission) -> $out/$TEST_SPLIT, $RUNS/result.zip"
launch test.py --mode "$TEST_SPLIT" --data "$DATA" --checkpoint "$ckpt" --out "$out" "${REGIONS[@]}" "${TEST[@]}" \
    --zip "$RUNS/result.zip"
