#!/usr/bin/env bash
# Stage 1: PASS pretraining of ResNet-18 and ResNet-50 (SwAV multi-crop + deep-to-shallow + pixel-to-pixel).
#   bash train_1.sh                                   demo settings on the embedded dataset (data/toy)
#   DATA=/path/to/ImageNetS50 bash train_1.sh         paper settings (PASS, ImageNet-S50)
#   DATA=... NGPU=8 bash train_1.sh                   the same under mpirun -np 8
# Rerunning continues an interrupted run; a finished stage is skipped.
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

# ---- hyperparameters (all of them) ----------------------------------------------------------
if [ "$PRESET" = demo ]; then
  # 400 images, batch 32: plain SGD at T=0.1 collapses here (SwAV loss stays at ln K, NMI at chance), in
  # PyTorch too; LARC (as SwAV / PASS's PyTorch code) with a softer temperature 0.5 learns within the budget.
  COMMON=(--nmb-crops 2 4 --size-crops 96 48 --min-scale-crops 0.3 0.1 --max-scale-crops 1 0.3 --blur-sigma 1.0
          --nmb-prototypes 50 --queue-length 0 --freeze-prototypes-niters 20 --epsilon 0.05 --temperature 0.5
          --batch-size 32 --larc 0.001 --base-lr 0.6 --final-lr 0.006 --wd 1e-6 --workers 2 --seed 31)
  # NMI grows with compute far more than with any setting tried (benchmarks/swav_demo_sweeps.md): most of
  # the budget goes to ResNet-18, which makes the pseudo labels; ResNet-50 only initialises UPerNet.
  R18=(--epochs 26 --warmup-epochs 2 --hidden-mlp 512)
  R50=(--epochs 2 --warmup-epochs 0 --hidden-mlp 512)
else
  # PASS's PyTorch recipe (LUSSeg/PASS main branch), every value from the file named; LARC trust 0.001, clip off,
  # from main:main_pretrain.py; --batch-size is the global batch: 8 GPUs x BATCH=32 = 256.
  COMMON=(--crops-for-assign 0 1 --temperature 0.1 --epsilon 0.05 --sinkhorn-iterations 3 --feat-dim 128
          --epoch-queue-starts 15 --batch-size 256 --larc 0.001 --base-lr 0.6 --final-lr 0.0006 --warmup-epochs 0
          --wd 1e-6 --workers 10 --seed 10010 --shallow 3 --weights 1 1)
  # ResNet-18, ImageNet-S50: main:scripts/luss50_pass.sh (the recipe of PASS's 29.2 / 29.3 mIoU).
  R18=(--nmb-crops 2 6 --size-crops 224 96 --min-scale-crops 0.14 0.05 --max-scale-crops 1 0.14
       --hidden-mlp 512 --nmb-prototypes 500 --queue-length 2048 --freeze-prototypes-niters 1001 --epochs 200)
  # ResNet-50: PASS's ResNet-50 recipe, main:scripts/luss300_pass.sh (= luss919_pass.sh): 2 crops of 224 only,
  # 3000 prototypes, queue 3840, 100 epochs, prototypes frozen 5005 iterations (as published, in iterations).
  R50=(--nmb-crops 2 --size-crops 224 --min-scale-crops 0.08 --max-scale-crops 1
       --hidden-mlp 2048 --nmb-prototypes 3000 --queue-length 3840 --freeze-prototypes-niters 5005 --epochs 100)
fi
# ----------------------------------------------------------------------------------------------

stage "pretrain ResNet-18 [$PRESET] -> $RUNS/r18/pretrain"
launch main_pretrain.py --data "$DATA" --arch resnet18 --dump-path "$RUNS/r18/pretrain" "${COMMON[@]}" "${R18[@]}"
stage "pretrain ResNet-50 [$PRESET] -> $RUNS/r50/pretrain"
launch main_pretrain.py --data "$DATA" --arch resnet50 --dump-path "$RUNS/r50/pretrain" "${COMMON[@]}" "${R50[@]}"
