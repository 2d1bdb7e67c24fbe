"""Per-pixel pseudo labels from the pixel-attention model and the k-means centroids (PASS).

For an image resized to --short-side: cosine similarity of every (x4-upsampled, L2-normalised)
pixel feature to every centroid, argmax + 1, nearest-upsampled to the image size; pixels whose
channel-mean attention (bilinearly upsampled) is below the background threshold become 0.

Three modes:
  sweep    on a split with ground truth (validation): evaluate the labels for a range of thresholds
           with the project's evaluator (Hungarian match per threshold), write threshold_curve.json,
           threshold_curve.png and threshold.json (the chosen threshold), which later stages read.
  label-free  no ground truth: the threshold and its side from the data alone (uss.labeling.label_free: Otsu on
           the per-image standardised attention of train images, background side by the border prior)
           -> threshold.json
  generate one label PNG per image of a split (train) with uss.writer (atomic, resumable, shardable across
           MPI ranks or with --shard i/n; failures listed in <out>_failures.txt, exit status 1). The threshold
           is --threshold if given, else threshold.json.

The labeler and the sweep are uss.labeling's.
"""
import argparse
import os
from functools import partial
from typing import List, Optional

from uss import options, writer
from uss.crf import with_crf
from uss.data.label_png import read_label_png
from uss.data.split import ImageNetSSplit
from uss.errors import InputError
from uss.labeling import label_free
from uss.labeling.labelers import PixelLabeler, load_centroids
from uss.labeling.threshold import (PER_IMAGE, RAW, SIDES, THRESHOLD_FILE, apply_threshold,
                                    oracle_foreground_labels, resolve_threshold, resolve_thresholds, sweep)
from uss.checkpoints.trained import load_pixel_attention_model
from uss.training import runner

SCALE_NAMES = {"raw": RAW, "per-image": PER_IMAGE}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="PASS per-pixel pseudo labels: threshold sweep and generation.")

    def shared() -> List[argparse.ArgumentParser]:
        parent = argparse.ArgumentParser(add_help=False)
        parent.add_argument("--attention-scale", default="raw", choices=sorted(SCALE_NAMES),
                            help="sweep: the attention as the model gives it (raw, PASS's) or standardised within each "
                                 "image (per-image, as the label-free threshold reads it); generate reads the scale "
                                 "from threshold.json")
        parent.add_argument("--foreground", default="attention", choices=["attention", "oracle"],
                            help="generate: background from the thresholded attention (the method) or, for a ceiling "
                                 "on a split with ground truth, from the true masks")
        return [options.labelling(SIDES, "folder with centroids.npy (and threshold.json)", "background threshold",
                                  "<cluster-dir>/threshold.json"), parent]

    options.subcommands(parser, {
        "sweep": ("choose the background threshold on a split with ground truth -> threshold.json",
                  [*shared(), options.label_folder(False, "folder for threshold.json and the curve "
                                                          "(default: <cluster-dir>)")]),
        "label-free": ("choose the background threshold from the data alone (no ground truth) -> threshold.json",
                       [*shared(), options.label_folder(False, "folder for threshold.json and the histogram "
                                                               "(default: <cluster-dir>)")]),
        "generate": ("write one label PNG per image of a split", [*shared(), options.label_folder()])})
    return parser


def run(args: argparse.Namespace) -> int:
    """Sweep or generate; returns the exit status (1 when images could not be labelled)."""
    runner.setup_device()
    split = ImageNetSSplit(args.data, args.split or ("validation" if args.command == "sweep" else "train"))
    centroids = load_centroids(args.centroids or os.path.join(args.cluster_dir, "centroids.npy"))
    threshold = None
    if args.command == "generate" and args.foreground != "oracle":
        threshold = resolve_threshold(args.threshold, os.path.join(args.cluster_dir, THRESHOLD_FILE), args.background)
    if threshold:
        scale = threshold.scale
    else:
        scale = PER_IMAGE if args.command == "label-free" else SCALE_NAMES[args.attention_scale]
    labeler = PixelLabeler(load_pixel_attention_model(args.pretrained), centroids, args.short_side, scale)
    log = runner.StageLog(f"pseudo labels {args.command}", args.cluster_dir)
    if args.command == "sweep":
        thresholds = resolve_thresholds(args.thresholds, lambda image: labeler(image)[1], split)
        chosen = sweep(lambda image: partial(apply_threshold, *labeler(image)), split, thresholds,
                       len(centroids), args.out or args.cluster_dir, attention_scale=scale)
        log.info(f"chosen threshold {chosen['threshold']:.3f}, background {chosen['background']} (validation mIoU "
                 f"{100 * chosen['mIoU']:.2f}) -> "
                 f"{os.path.join(args.out or args.cluster_dir, THRESHOLD_FILE)}")
        return 0
    if args.command == "label-free":
        chosen = label_free.choose(lambda image: label_free.pixel_values(labeler(image)[1]), split,
                                   args.out or args.cluster_dir, side=args.background, attention_scale=scale)
        log.info(f"chosen threshold {chosen['threshold']:.3f}, background {chosen['background']} "
                 f"({chosen['side_from']}; no labels read) -> "
                 f"{os.path.join(args.out or args.cluster_dir, THRESHOLD_FILE)}")
        return 0
    part = writer.this_part(args.shard)
    if args.foreground == "oracle":
        # A ceiling, not the method: the ground-truth foreground replaces the thresholded attention.
        if not split.has_segmentation:
            raise InputError(f"--foreground oracle needs ground truth: {split.segmentation_dir} not found")
        log.info(f"labelling {len(split)} images of {split.image_dir} inside their TRUE foreground (ceiling)")

        def label_fn(image, name):
            return oracle_foreground_labels(labeler(image)[0], read_label_png(split.label_path(name)))

        desc = f"pseudo labels ({split.split}, true foreground)"
    else:
        log.info(f"labelling {len(split)} images of {split.image_dir} with {threshold.describe()}")

        def label_fn(image, name):
            return apply_threshold(*labeler(image), threshold.value, threshold.side)

        desc = f"pseudo labels ({split.split})"
    if args.crf:
        label_fn = with_crf(label_fn, len(centroids) + 1)
        desc += " + dense CRF"
    summary = writer.write_split(split, args.out, label_fn, part, desc)
    log.info(f"{summary.describe()} -> {args.out}")
    failed = writer.settle(split, args.out, part, summary, f"[{log.stage}]")
    return 1 if failed and not args.allow_failures else 0


def main(argv: Optional[List[str]] = None) -> int:
    return run(build_parser().parse_args(argv))
