"""Mask-based pseudo labels (the challenge entry's "SAM grid-mask" labels).

For every image: the region proposer's masks (SAM's automatic generator, or superpixels) are sorted
by area, largest first, and painted in that order so smaller masks overwrite larger ones. Each mask
gets the centroid (cosine, argmax) of the mean ResNet pixel-attention feature inside it, or
background when the mask's mean attention is below the mask threshold. Pixels no mask covers keep
the per-pixel label (per-pixel threshold from train_2's sweep).

Modes, as for per-pixel labels:
  sweep    on validation: mIoU vs mask threshold -> <sweep-dir>/threshold_curve.{json,png}, threshold.json
  label-free  no ground truth: the mask threshold from the data alone (uss.labeling.label_free: Otsu on the masks'
           area-weighted mean attention over train images, in the per-pixel threshold's attention scale; the per-pixel
           labels' background side) -> threshold.json
  generate one label PNG per image (train) with uss.writer (atomic, resumable, shardable: MPI ranks or
           --shard i/n); the mask threshold is --threshold, else <sweep-dir>/threshold.json.

The labelers and the sweep are uss.labeling's.
"""
import argparse
import os
from typing import List, Optional

from uss import options, writer
from uss.crf import with_crf
from uss.data.split import ImageNetSSplit
from uss.errors import InputError
from uss.labeling import label_free
from uss.labeling.labelers import MaskLabeler, PixelLabeler, load_centroids
from uss.labeling.threshold import SIDES, THRESHOLD_FILE, resolve_threshold, resolve_thresholds, sweep
from uss.checkpoints.trained import load_pixel_attention_model
from uss.training import runner


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Mask-based pseudo labels: threshold sweep and generation.")

    def shared() -> List[argparse.ArgumentParser]:
        parent = argparse.ArgumentParser(add_help=False)
        parent.add_argument("--pixel-threshold", type=float, default=None,
                            help="threshold for pixels no mask covers (default: <cluster-dir>/threshold.json)")
        parent.add_argument("--pixel-background", default=None, choices=SIDES,
                            help="its background side (default: the per-pixel sweep's, or 'below' with "
                                 "--pixel-threshold)")
        parent.add_argument("--sweep-dir", required=True,
                            help="where the mask sweep writes / generate reads threshold.json")
        return [options.labelling(SIDES, "folder with centroids.npy and the per-pixel threshold.json",
                                  "mask threshold", "<sweep-dir>/threshold.json"), parent, options.regions()]

    commands = options.subcommands(parser, {
        "sweep": ("choose the mask threshold on a split with ground truth -> <sweep-dir>/threshold.json", shared()),
        "label-free": ("choose the mask threshold from the data alone (no ground truth) -> "
                       "<sweep-dir>/threshold.json", shared()),
        "generate": ("write one mask-based label PNG per image of a split", [*shared(), options.label_folder()])})
    for name in ("sweep", "label-free"):
        commands[name].set_defaults(out=None)  # they write to --sweep-dir; args.out is None there, as before
    return parser


def run(args: argparse.Namespace) -> int:
    """Sweep or generate; returns the exit status (1 when images could not be labelled)."""
    runner.setup_device()
    log = runner.StageLog(f"sam_refine {args.command}", args.sweep_dir)
    split = ImageNetSSplit(args.data, args.split or ("validation" if args.command == "sweep" else "train"))
    centroids = load_centroids(args.centroids or os.path.join(args.cluster_dir, "centroids.npy"))
    pixel = resolve_threshold(args.pixel_threshold, os.path.join(args.cluster_dir, THRESHOLD_FILE),
                              args.pixel_background)
    proposer = options.region_proposer(args)
    log.info(f"regions: {proposer.describe()}")
    if args.proposer == "superpixel":
        log.info("note: superpixel regions stand in for SAM masks (no SAM weights); pass --proposer sam "
                 "--sam-checkpoint weights/sam_vit_b_01ec64.pth for the real thing")
    # One attention scale for both thresholds: the masks' mean attentions are read in the per-pixel threshold's.
    labeler = MaskLabeler(PixelLabeler(load_pixel_attention_model(args.pretrained), centroids, args.short_side,
                                       pixel.scale), proposer, pixel.value, pixel.side)
    log.info(f"per-pixel {pixel.describe()} for uncovered pixels")
    if args.command == "sweep":
        thresholds = resolve_thresholds(args.thresholds, lambda image: labeler.labeler(image)[1], split)
        chosen = sweep(labeler.prepare, split, thresholds, len(centroids), args.sweep_dir,
                       label_source=f"mask ({args.proposer})", attention_scale=pixel.scale)
        log.info(f"chosen mask threshold {chosen['threshold']:.3f}, background {chosen['background']} (validation "
                 f"mIoU {100 * chosen['mIoU']:.2f}) -> {os.path.join(args.sweep_dir, THRESHOLD_FILE)}")
        return 0
    if args.command == "label-free":
        def values_of(image):
            _, masks, _, mask_attention = labeler.regions(image)
            return label_free.mask_values(masks, mask_attention)

        chosen = label_free.choose(values_of, split, args.sweep_dir, f"mask ({args.proposer})",
                                   side=args.background or pixel.side, attention_scale=pixel.scale)
        log.info(f"chosen mask threshold {chosen['threshold']:.3f}, background {chosen['background']} (no labels "
                 f"read) -> {os.path.join(args.sweep_dir, THRESHOLD_FILE)}")
        return 0
    part = writer.this_part(args.shard)
    mask = resolve_threshold(args.threshold, os.path.join(args.sweep_dir, THRESHOLD_FILE), args.background)
    if mask.scale != pixel.scale:  # an explicit --threshold reads the raw attention
        raise InputError(f"the mask threshold ({mask.source}) reads the attention {mask.scale}, the per-pixel one "
                         f"({pixel.source}) {pixel.scale}: choose both thresholds the same way (both swept or both "
                         f"label-free)")
    log.info(f"labelling {len(split)} images of {split.image_dir} with mask {mask.describe()}")

    def label_fn(image, name):
        return labeler(image, mask.value, mask.side)

    if args.crf:
        label_fn = with_crf(label_fn, len(centroids) + 1)
    summary = writer.write_split(split, args.out, label_fn, part,
                                 f"mask pseudo labels ({split.split})" + (" + dense CRF" if args.crf else ""))
    log.info(f"{summary.describe()} -> {args.out}")
    failed = writer.settle(split, args.out, part, summary, f"[{log.stage}]")
    return 1 if failed and not args.allow_failures else 0


def main(argv: Optional[List[str]] = None) -> int:
    return run(build_parser().parse_args(argv))
