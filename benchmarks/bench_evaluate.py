"""Evaluator speed on an ImageNet-S-50-sized synthetic set: 752 label maps of 375x500, 51 classes.

    .venv/bin/python benchmarks/bench_evaluate.py [--images 752] [--workers N] [--keep DIR]

Writes GT and (perturbed, id-permuted) predictions as label PNGs in a temp folder, then runs
evaluate_folder with match='auto' and prints images/s. Timing covers decoding + metrics + matching.
"""
import argparse
import os
import sys
import tempfile
import time

import cv2
import numpy as np

from uss.data.label_png import IGNORE, write_label_png
from uss.evaluation import evaluate_folder

NUM_CLASSES = 50
HEIGHT, WIDTH = 375, 500


def synth_pair(rng: np.random.Generator, cls: int, perm: np.ndarray):
    """One GT map (background + 1-3 blobs, ignore rims) and a noisy prediction in permuted ids."""
    gt = np.zeros((HEIGHT, WIDTH), np.int32)
    classes = [cls] + list(rng.choice(NUM_CLASSES, size=rng.integers(0, 3), replace=False) + 1)
    for k, c in enumerate(classes):
        center = (int(rng.integers(60, WIDTH - 60)), int(rng.integers(60, HEIGHT - 60)))
        big = k == 0 and rng.random() < 0.3  # some objects cover most of the image (size bucket L)
        axes = (int(rng.integers(200, 320)), int(rng.integers(150, 240))) if big else \
            (int(rng.integers(20, 200)), int(rng.integers(20, 150)))
        cv2.ellipse(gt, center, axes, float(rng.uniform(0, 180)), 0, 360, int(c), -1)
    rim = (cv2.morphologyEx((gt > 0).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0)
    pred = gt.copy()
    dx, dy = rng.integers(-8, 9, size=2)
    pred = np.roll(pred, (int(dy), int(dx)), axis=(0, 1))
    if rng.random() < 0.2:
        pred[pred == cls] = int(rng.integers(1, NUM_CLASSES + 1))
    gt[rim & (rng.random(gt.shape) < 0.5)] = IGNORE
    return gt, perm[pred]


def build(root: str, images: int, seed: int = 0) -> None:
    """Write <root>/gt and <root>/pred with `images` pairs spread over the 50 class folders."""
    rng = np.random.default_rng(seed)
    perm = np.concatenate([[0], rng.permutation(NUM_CLASSES) + 1])
    for i in range(images):
        cls = i % NUM_CLASSES + 1
        gt, pred = synth_pair(rng, cls, perm)
        name = os.path.join(f"n{cls:08d}", f"ILSVRC2012_val_{i:08d}.png")
        write_label_png(os.path.join(root, "gt", name), gt)
        write_label_png(os.path.join(root, "pred", name), pred)


def main() -> int:
    """Generate the set, evaluate it, print the speed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=752)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--keep", help="build the set in this folder (reused if present) instead of a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or tmp
        if not os.path.isdir(os.path.join(root, "gt")):
            start = time.perf_counter()
            build(root, args.images)
            print(f"generated {args.images} pairs of {HEIGHT}x{WIDTH} label PNGs in {time.perf_counter() - start:.1f}s")
        categories = [f"n{c:08d}" for c in range(1, NUM_CLASSES + 1)]
        start = time.perf_counter()
        result = evaluate_folder(os.path.join(root, "pred"), os.path.join(root, "gt"), categories=categories,
                                 match="auto", workers=args.workers, progress=False)
        wall = time.perf_counter() - start
    print(f"evaluated {result['num_images']} images in {wall:.2f}s wall (incl. input checks): "
          f"{result['num_images'] / wall:.1f} images/s; metric pass {result['images_per_s']:.1f} images/s")
    print(f"mIoU {100 * result['mIoU']:.2f}  Acc {100 * result['Acc']:.2f}  F {100 * result['FMeasure']:.2f}  "
          f"mBIoU {100 * result['mBIoU']:.2f}  S/MS/ML/L " +
          "/".join("n/a" if result[k] is None else f"{100 * result[k]:.1f}" for k in ("S", "MS", "ML", "L")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
