#!/usr/bin/env bash
# Stage 4: UPerNet on ResNet-50 (initialised from train_1's ResNet-50 pretraining), fine-tuned on the mask
# pseudo labels of train_3.sh; then test.py on validation (computes the Hungarian match) and on the test
# split (uses it), with test-time refinement by the region proposer's masks, ending with result.zip.
#   bash train_4.sh                                   demo (superpixel regions)
#   DATA=/path/to/ImageNetS50 NGPU=8 bash train_4.sh  paper settings, SAM ViT-B from weights/sam_vit_b_01ec64.pth
# Same DATA / NGPU / RUNS / PROPOSER / SAM_CHECKPOINT as train_3.sh. Rerunning continues.
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
  # UPerNet: mmsegmentation's recipe, configs/upernet/upernet_r50_512x512_80k_ade20k.py with
  # configs/_base_/schedules/schedule_80k.py: SGD lr 0.01, momentum 0.9, wd 5e-4, poly decay (power 0.9,
  # min lr 1e-4, per iteration), 80k iterations at a global batch of 16 (4 GPUs x 4). Adapted: 20 epochs of
  # ImageNet-S50 at batch 16 = 80.5k iterations; PASS's data pipeline (crop 224 at scale 0.08-1, flip, labels / 2,
  # main:main_pixel_finetuning.py) in place of ADE20K's 512 crops; no auxiliary FCN head (mmseg adds one, weight 0.4).
  FINETUNE=(--arch resnet50 --head upernet --epochs 20 --batch-size 16 --crop-size 224 --min-scale 0.08
            --label-scale 0.5 --schedule poly --poly-power 0.9 --base-lr 0.01 --final-lr 0.0001 --momentum 0.9
            --wd 5e-4 --warmup-epochs 0 --workers 8 --seed 31)
  # main:inference.py: Resize(256), logits upsampled bilinearly.
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
ckpt=$RUNS/r50/finetune_upernet/checkpoint.pth.tar
stage "fine-tune UPerNet (ResNet-50) on mask pseudo labels -> $RUNS/r50/finetune_upernet"
launch main_pixel_finetuning.py --data "$DATA" --pseudo-labels "$RUNS/r18/pseudo_labels_mask" \
    --pretrained "$RUNS/r50/pretrain/checkpoint.pth.tar" --dump-path "$RUNS/r50/finetune_upernet" "${FINETUNE[@]}"

out=$RUNS/test_py
stage "test.py on validation (Hungarian match) -> $out/validation"
launch test.py --mode validation --data "$DATA" --checkpoint "$ckpt" --out "$out" "${REGIONS[@]}" "${TEST[@]}"
stage "test.py on $TEST_SPLIT (validation match, submission) -> $out/$TEST_SPLIT, $RUNS/result.zip"
launch test.py --mode "$TEST_SPLIT" --data "$DATA" --checkpoint "$ckpt" --out "$out" "${REGIONS[@]}" "${TEST[@]}" \
    --zip "$RUNS/result.zip"
