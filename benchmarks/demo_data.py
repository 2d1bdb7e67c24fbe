"""How far colour goes on the demo data, and what the pretrained backbone adds to it: k-means NMI (k = classes) of
whole-image hue histograms, and of the pooled C5 features of a random-init and of the pretrained backbone, on the
train images as they are and recoloured at random (every hue rotated by one random angle per image).

    .venv/bin/python benchmarks/demo_data.py                       # data/toy, runs/demo/r18/pretrain (after demo.sh)
    .venv/bin/python benchmarks/demo_data.py --data D --checkpoint C [--checkpoint C2 ...]

The demo data's design target (issue "a demo that segments"): hue-histogram NMI at most 0.5, so colour alone does
not solve it; a backbone that learnt more than colour keeps part of its NMI on the recoloured images."""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

import uss  # noqa: E402,F401  (jittor's environment before jittor)
from uss.evaluation.feature_nmi import (hue_histograms, kmeans_nmi, load_backbone, load_split,  # noqa: E402
                                        pooled_features, recoloured)

SEEDS = (0, 1, 2)


def mean_nmi(features: np.ndarray, classes: np.ndarray) -> str:
    """NMI over three k-means seeds, as 'mean (min-max)'."""
    values = [kmeans_nmi(features, classes, seed=seed) for seed in SEEDS]
    return f"{np.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/toy")
    parser.add_argument("--split", default="train")
    parser.add_argument("--checkpoint", action="append", default=None,
                        help="pretraining checkpoint(s) (default: runs/demo/r18/pretrain/checkpoint.safetensors, "
                             "and runs/demo/random_init/r18/pretrain/checkpoint.safetensors when present)")
    args = parser.parse_args()
    checkpoints = args.checkpoint or [path for path in ("runs/demo/random_init/r18/pretrain/checkpoint.safetensors",
                                                        "runs/demo/r18/pretrain/checkpoint.safetensors")
                                      if os.path.isfile(path)]
    images, classes = load_split(args.data, args.split)
    shuffled = recoloured(images, seed=0)
    print(f"{args.data} {args.split}: {len(images)} images, {classes.max() + 1} classes; k-means NMI, mean "
          f"(min-max) of seeds {SEEDS}")
    print("| representation | images as they are | recoloured at random |")
    print("|---|---:|---:|")
    print(f"| hue histogram ({hue_histograms(images[:1]).shape[1]} bins) | {mean_nmi(hue_histograms(images), classes)} "
          f"| {mean_nmi(hue_histograms(shuffled), classes)} |")
    for path in checkpoints:
        backbone = load_backbone(path)
        print(f"| pooled C5 of {path} | {mean_nmi(pooled_features(backbone, images), classes)} "
              f"| {mean_nmi(pooled_features(backbone, shuffled), classes)} |")


if __name__ == "__main__":
    main()
