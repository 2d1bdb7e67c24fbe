#!/usr/bin/env bash
# Stage 1: PASS pretraining of ResNet-18 and ResNet-50 (SwAV multi-crop + deep-to-shallow + pixel-to-pixel).
#   bash train_1.sh                                   demo settings on the embedded dataset (data/toy)
#   DATA=/path/to/ImageNetS50 bash train_1.sh         paper settings (PASS, ImageNet-S50)
#   DATA=... NGPU=8 bash train_1.sh                   the same under mpirun -np 8
#   DATA=/path/to/photos CLASSES=12 PRESET=small bash train_1.sh   your own images (a plain folder, no labels), CPU
# Rerunning continues an interrupted run; a finished stage is skipped.
#   PRETRAIN_EXTRA="--epochs 0" RUNS=runs/demo/random_init bash train_1.sh   the initial (random) weights only:
#                                                     demo.sh's random-init reference row
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

# ---- hyperparameters (all of them) ----------------------------------------------------------
DEFAULT_ARCHS="r18 r50"
BACKBONE=()
if [ "$PRESET" = demo ] || [ "$PRESET" = small ]; then
  # The demo regime (benchmarks/demo_regime.md): 64-px images through a quarter-width ResNet-18 with the
  # small-input stem (one 3x3/1 conv, no max-pool), so C5 is 8x8 instead of the 2x2 a 224-px ImageNet
  # stem leaves; SwAV with LARC and a soft temperature (plain SGD at T=0.1 stays at ln K here, in PyTorch too).
  # Only ResNet-18 is pretrained: it makes the pseudo labels and carries the demo's UPerNet (train_4.sh); a
  # ResNet-50 does not learn anything useful in the minutes a CPU demo has.
  DEFAULT_ARCHS=r18
  BACKBONE=(--width 0.25 --stem small)
  COMMON=(--nmb-crops 2 4 --size-crops 64 32 --min-scale-crops 0.3 0.1 --max-scale-crops 1 0.3 --blur-sigma 0.7
          --nmb-prototypes 50 --queue-length 0 --freeze-prototypes-niters 20 --epsilon 0.05 --temperature 0.5
          --batch-size 32 --larc 0.001 --base-lr 0.6 --final-lr 0.006 --wd 1e-6 --workers 0 --seed 31
          --crops-for-assign 0 1 --sinkhorn-iterations 3 --feat-dim 128 --shallow 3 --weights 1 1 --grid-size 7
          --color-strength 0.5 --momentum 0.9 --schedule cosine)
  # --workers 0: on 2 cores jittor's loader processes slow this loop from 32 to 20 img/s (same crops, same losses).
  # --color-strength 0.5, a departure from SwAV's 1.0 (hue +-0.1 instead of +-0.2), and 20 epochs: together they
  # lift the attention-pooled k-means NMI from 0.240 to 0.368 and the per-pixel labels by 3 points; either alone
  # loses a stage (benchmarks/demo_regime.md, section 0).
  R18=(--epochs 20 --warmup-epochs 1 --hidden-mlp 128)  # projection width: C5 has only 128 channels
  if [ "$PRESET" = small ]; then
    # PRESET=small (a few hundred images of your own, scaled to short side 96 by scripts/common.sh): the demo's
    # settings and about the demo's number of steps (620 at 300 images: 9 per epoch at batch 32).
    R18=(--epochs 69 --warmup-epochs 3 --hidden-mlp 128)
  fi
else
  # PASS's PyTorch recipe (LUSSeg/PASS main branch), every value from the file named; LARC trust 0.001, clip off,
  # from main:main_pretrain.py; --batch-size is the global batch: 8 GPUs x BATCH=32 = 256.
  COMMON=(--crops-for-assign 0 1 --temperature 0.1 --epsilon 0.05 --sinkhorn-iterations 3 --feat-dim 128
          --epoch-queue-starts 15 --batch-size 256 --larc 0.001 --base-lr 0.6 --final-lr 0.0006 --warmup-epochs 0
          --wd 1e-6 --workers 10 --seed 10010 --shallow 3 --weights 1 1 --momentum 0.9 --schedule cosine
          --blur-sigma 2.0 --color-strength 1.0 --grid-size 7)
  # Augmentation and the pixel-to-pixel grid: src/multicropdataset.py (PILRandomGaussianBlur radius_max 2,
  # get_color_distortion s=1.0, MultiCropDatasetGrid grid_size 7).
  # ResNet-18, ImageNet-S50: main:scripts/luss50_pass.sh (the recipe of PASS's 29.2 / 29.3 mIoU).
  R18=(--nmb-crops 2 6 --size-crops 224 96 --min-scale-crops 0.14 0.05 --max-scale-crops 1 0.14
       --hidden-mlp 512 --nmb-prototypes 500 --queue-length 2048 --freeze-prototypes-niters 1001 --epochs 200)
  # ResNet-50: PASS's ResNet-50 recipe, main:scripts/luss300_pass.sh (= luss919_pass.sh): 2 crops of 224 only,
  # 3000 prototypes, queue 3840, 100 epochs, prototypes frozen 5005 iterations (as published, in iterations).
  R50=(--nmb-crops 2 --size-crops 224 --min-scale-crops 0.08 --max-scale-crops 1
       --hidden-mlp 2048 --nmb-prototypes 3000 --queue-length 3840 --freeze-prototypes-niters 5005 --epochs 100)
fi
# ----------------------------------------------------------------------------------------------
ARCHS=${ARCHS:-$DEFAULT_ARCHS}  # or ARCHS="r18" / "r50" to run one backbone

for arch in $ARCHS; do
  if [ "$arch" = r18 ]; then net=resnet18; extra=("${R18[@]}"); else net=resnet50; extra=("${R50[@]}"); fi
  stage "pretrain $net [$PRESET] -> $RUNS/$arch/pretrain"
  launch main_pretrain.py --data "$TRAIN_DATA" --arch $net --dump-path "$RUNS/$arch/pretrain" "${BACKBONE[@]}" \
      "${COMMON[@]}" "${extra[@]}" "${SKIP_BAD[@]}" ${PRETRAIN_EXTRA:-}
done
