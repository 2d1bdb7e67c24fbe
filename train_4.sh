#!/usr/bin/env bash
# Stage 4: UPerNet on ResNet-50 (initialised from train_1's ResNet-50 pretraining), fine-tuned on the mask
# pseudo labels of train_3.sh; then test.py on validation (computes the Hungarian match) and on the test
# split (uses it), with test-time refinement by the region proposer's masks, ending with result.zip.
#   bash train_4.sh                                   demo (superpixel regions)
#   DATA=/path/to/ImageNetS50 NGPU=8 bash train_4.sh  paper settings, SAM ViT-B from weights/sam_vit_b_01ec64.pth
#   DATA=/path/to/photos CLASSES=12 PRESET=small bash train_4.sh   a plain folder: predicts every image (the model's
#                                     own ids, no match: there are no labels) into $RUNS/test_py/all, then a gallery
# Same DATA / NGPU / RUNS / PROPOSER / SAM_CHECKPOINT as train_3.sh. Rerunning continues.
#   LABELS=DIR TAG=_name bash train_4.sh  the same recipe on other labels (the demo's ceiling row passes the true
#                                         train masks), written to finetune_upernet_name/, test_py_name/, result_name.zip
#   FINETUNE_EXTRA="--epochs 20"          adds arguments to main_pixel_finetuning.py; give such a run a TAG of its own
#                                         (benchmarks/demo_regime.md, section 8)
# PRETRAINED_R50 (PRETRAINED_R18 for the demo) replaces train_1's backbone (read weights-only): the challenge entry's
# weights/train_pixelattention_checkpoint.pth.tar, PASS's pass50_pretrained.pth.tar, SwAV's
# swav_800ep_pretrain.pth.tar or DINO's dino_resnet50_pretrain.pth.
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

# ---- hyperparameters (all of them) ----------------------------------------------------------
UPERNET_ARCH=r50
if [ "$PRESET" = demo ] || [ "$PRESET" = small ]; then
  # The demo's UPerNet sits on train_1's demo ResNet-18 (the only backbone the demo pretrains). Inner channels:
  # mmsegmentation gives the head a quarter of C5's (512 of ResNet-50's 2048), 32 here; the demo takes 16 and
  # spends what that saves on steps. With the small stem C2 has stride 1, so the head's full-resolution convs cost
  # more than the backbone: a step takes 0.27 s at 16 channels, 0.48 s at 32. In the same minutes 16 channels for
  # 8 epochs beat 32 for 4 on every row, and 12 epochs took the ceiling row from 53 to 63 (benchmarks/demo_regime.md,
  # section 0); 10 epochs is what the 25-minute demo affords.
  UPERNET_ARCH=r18
  PROPOSER=${PROPOSER:-superpixel}
  # --workers 0 (in-process loading): on 2 cores loader processes cost more than they save (train_1.sh).
  FINETUNE=(--arch resnet18 --width 0.25 --stem small --head upernet --head-channels 16 --epochs 10 --batch-size 16
            --crop-size 64 --min-scale 0.3 --label-scale 0.5 --base-lr 0.02 --final-lr 0.0002 --wd 1e-4 --workers 0
            --seed 31 --pool-scales 1 2 3 6 --head-dropout 0.1 --classifier-init normal --max-scale 1.0 --larc 0 --momentum 0.9
            --schedule cosine --warmup-epochs 0)
  TEST=(--short-side 64 --max-pixels 1000000)
  TEST_SPLIT=test
  if [ "$PRESET" = small ]; then
    FINETUNE+=(--epochs 34)  # about the demo's 620 steps at 300 images (18 per epoch at batch 16)
  fi
else
  PROPOSER=${PROPOSER:-sam}
  # UPerNet: mmsegmentation's recipe, configs/upernet/upernet_r50_512x512_80k_ade20k.py with
  # configs/_base_/schedules/schedule_80k.py: SGD lr 0.01, momentum 0.9, wd 5e-4, poly decay (power 0.9,
  # min lr 1e-4, per iteration), 80k iterations at a global batch of 16 (4 GPUs x 4). Adapted: 20 epochs of
  # ImageNet-S50 at batch 16 = 80.5k iterations; PASS's data pipeline (crop 224 at scale 0.08-1, flip, labels / 2,
  # main:main_pixel_finetuning.py) in place of ADE20K's 512 crops; no auxiliary FCN head (mmseg adds one, weight 0.4).
  FINETUNE=(--arch resnet50 --head upernet --epochs 20 --batch-size 16 --crop-size 224 --min-scale 0.08
            --label-scale 0.5 --schedule poly --poly-power 0.9 --base-lr 0.01 --final-lr 0.0001 --momentum 0.9
            --wd 5e-4 --warmup-epochs 0 --workers 8 --seed 31 --max-scale 1.0
            --head-channels 512 --pool-scales 1 2 3 6 --head-dropout 0.1 --classifier-init normal)
  # The head: configs/_base_/models/upernet_r50.py (UPerHead channels 512, pool_scales (1, 2, 3, 6), dropout_ratio
  # 0.1) and mmseg/models/decode_heads/decode_head.py (conv_seg initialised normal, std 0.01).
  # main:inference.py: Resize(256), logits upsampled bilinearly; images over 1000x1000 pixels scaled down first.
  TEST=(--short-side 256 --max-pixels 1000000)
  TEST_SPLIT=${TEST_SPLIT:-test}
fi
# Region settings and the SAM checkpoint (SAM_CHECKPOINT, SAM_TYPE): scripts/common.sh's region_options, from
# src/uss/regions/settings.py.
# ----------------------------------------------------------------------------------------------

region_options
LABELS=${LABELS:-$RUNS/${LABEL_ARCH:-r18}/pseudo_labels_mask}
TAG=${TAG:-}
tuned=$RUNS/$UPERNET_ARCH/finetune_upernet$TAG
ckpt=$tuned/checkpoint.safetensors
start=PRETRAINED_${UPERNET_ARCH^^}
stage "fine-tune UPerNet ($UPERNET_ARCH) on $LABELS -> $tuned"
launch main_pixel_finetuning.py --data "$TRAIN_DATA" --pseudo-labels "$LABELS" \
    --pretrained "${!start:-$RUNS/$UPERNET_ARCH/pretrain/checkpoint.safetensors}" --dump-path "$tuned" "${FINETUNE[@]}" \
    "${CLASS_ARGS[@]}" "${SKIP_BAD[@]}" ${FINETUNE_EXTRA:-}

out=$RUNS/test_py$TAG
if [ "$PLAIN" = 1 ]; then
  # No labels anywhere: every image of the folder (its originals; unreadable ones reported and skipped), the model's
  # own ids, then a gallery to look through them. Small: the originals are full size, so the paper's superpixels.
  if [ "$PRESET" = small ]; then region_options paper; fi
  stage "test.py on every image of $DATA -> $out/all"
  launch test.py --split all --data "$DATA" --checkpoint "$ckpt" --out "$out" "${REGIONS[@]}" "${TEST[@]}" \
      "${CRF_PREDICTIONS[@]}" --match none --allow-failures
  stage "gallery -> $RUNS/gallery$TAG/index.html"
  "$PY" -m uss.gallery --data "$DATA" --split all --pred "$out/all" --out "$RUNS/gallery$TAG"
  exit 0
fi
stage "test.py on validation (Hungarian match) -> $out/validation"
launch test.py --split validation --data "$DATA" --checkpoint "$ckpt" --out "$out" "${REGIONS[@]}" "${TEST[@]}" \
    "${CRF_PREDICTIONS[@]}"
stage "test.py on $TEST_SPLIT (validation match, submission) -> $out/$TEST_SPLIT, $RUNS/result$TAG.zip"
launch test.py --split "$TEST_SPLIT" --data "$DATA" --checkpoint "$ckpt" --out "$out" "${REGIONS[@]}" "${TEST[@]}" \
    "${CRF_PREDICTIONS[@]}" --zip "$RUNS/result$TAG.zip"
