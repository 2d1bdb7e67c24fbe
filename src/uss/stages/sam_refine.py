"""Mask-based pseudo labels (the challenge entry's "SAM grid-mask" labels).

For every image: the region proposer's masks (SAM's automatic generator, or superpixels) are sorted
by area, largest first, and painted in that order so smaller masks overwrite larger ones. Each mask
gets the centroid (cosine, argmax) of the mean ResNet pixel-attention feature inside it, or
background when the mask's mean attention is below the mask threshold. Pixels no mask covers keep
the per-pixel label (per-pixel threshold from train_2's sweep).

Modes, as for per-pixel labels:
  sweep    on validation: mIoU vs mask threshold -> <sweep-dir>/threshold_curve.{json,png}, threshold.json
  generate one label PNG per image (train), atomic, resumable, shardable (MPI ranks or --shard i/n);
           the mask threshold is --threshold, else <sweep-dir>/threshold.json.
"""
import argparse
import os
from typing import Callable, List, Optional, Sequence

import cv2
import numpy as np

from uss import options
from uss.errors import InputError
from uss.regions import RegionProposer, build_proposer, sort_by_area
from uss.regions.defaults import SAM_MODEL_TYPE, SAM_POINTS_PER_BATCH, SAM_SETTINGS, SUPERPIXEL_SETTINGS
from uss.stages import pseudo_labels as pixel
from uss.training import runner


class MaskLabeler:
    """Mask-based labels from a PixelLabeler (features, attention, centroids) and a region proposer."""

    def __init__(self, labeler: "pixel.PixelLabeler", proposer: RegionProposer, pixel_threshold: float,
                 pixel_side: str = pixel.BELOW):
        self.labeler = labeler
        self.proposer = proposer
        self.pixel_threshold = pixel_threshold
        self.pixel_side = pixel_side

    def regions(self, image: np.ndarray):
        """(per-pixel labels, masks largest first, their classes 1..K, their mean attentions)."""
        import jittor as jt

        height, width = image.shape[:2]
        masks = sort_by_area(self.proposer.propose(image))
        with jt.no_grad():
            feats, attention = self.labeler.features(image)
            channels, h, w = feats.shape
            flat = feats.reshape(channels, h * w).transpose(1, 0)
            classes = self.labeler.classify(flat).reshape(h, w).numpy().astype(np.int32)
            attention = attention.numpy().astype(np.float32)
            if masks:
                # Each mask's share of every feature cell: its mean feature is a weighted mean of cells.
                weights = np.stack([cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA).ravel()
                                    for m in masks])
                empty = weights.sum(1) <= 0
                weights[empty] = 1.0 / (h * w)  # a mask too small to touch any cell: fall back to the image mean
                mask_classes = self.labeler.classify(jt.matmul(jt.array(weights), flat)).numpy().astype(np.int32)
            else:
                mask_classes = np.zeros(0, np.int32)
        classes = cv2.resize(classes, (width, height), interpolation=cv2.INTER_NEAREST)
        attention = cv2.resize(attention, (width, height), interpolation=cv2.INTER_LINEAR)
        per_pixel = pixel.apply_threshold(classes, attention, self.pixel_threshold, self.pixel_side)
        mask_attention = np.array([float(attention[m].mean()) if m.any() else 0.0 for m in masks], np.float32)
        return per_pixel, masks, mask_classes, mask_attention

    def prepare(self, image: np.ndarray) -> Callable[[float], np.ndarray]:
        """Do the expensive part once; returns label_at(mask_threshold, side) -> HxW ids."""
        per_pixel, masks, mask_classes, mask_attention = self.regions(image)

        def label_at(threshold: float, side: str = pixel.BELOW) -> np.ndarray:
            label = per_pixel.copy()
            background = pixel.is_background(mask_attention, threshold, side)
            for mask, cls, bg in zip(masks, mask_classes, background):
                label[mask] = 0 if bg else cls
            return label

        return label_at

    def __call__(self, image: np.ndarray, threshold: float, side: str = pixel.BELOW) -> np.ndarray:
        return self.prepare(image)(threshold, side)


def proposer_from_args(args: argparse.Namespace) -> RegionProposer:
    if args.proposer == "sam":
        options = dict(points_per_side=args.points_per_side, points_per_batch=args.points_per_batch,
                       pred_iou_thresh=args.pred_iou_thresh, stability_score_thresh=args.stability_score_thresh,
                       crop_n_layers=args.crop_n_layers,
                       crop_n_points_downscale_factor=args.crop_n_points_downscale_factor,
                       min_mask_region_area=args.min_mask_region_area)
    else:
        options = dict(method=args.superpixel_method, scale=args.superpixel_scale, sigma=args.superpixel_sigma,
                       min_size=args.superpixel_min_size, n_segments=args.superpixel_segments)
    return build_proposer(args.proposer, args.sam_checkpoint, args.sam_model_type, options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Mask-based pseudo labels: threshold sweep and generation.")

    def shared() -> List[argparse.ArgumentParser]:
        parent = argparse.ArgumentParser(add_help=False)
        parent.add_argument("--pixel-threshold", type=float, default=None,
                            help="threshold for pixels no mask covers (default: <cluster-dir>/threshold.json)")
        parent.add_argument("--pixel-background", default=None, choices=pixel.SIDES,
                            help="its background side (default: the per-pixel sweep's, or 'below' with "
                                 "--pixel-threshold)")
        parent.add_argument("--sweep-dir", required=True,
                            help="where the mask sweep writes / generate reads threshold.json")
        return [options.labelling(pixel.SIDES, "folder with centroids.npy and the per-pixel threshold.json",
                                  "mask threshold", "<sweep-dir>/threshold.json"), parent, options.regions()]

    commands = options.subcommands(parser, {
        "sweep": ("choose the mask threshold on a split with ground truth -> <sweep-dir>/threshold.json", shared()),
        "generate": ("write one mask-based label PNG per image of a split", [*shared(), options.label_folder()])})
    commands["sweep"].set_defaults(out=None)  # the sweep writes to --sweep-dir; args.out is None there, as before
    return parser


def run(args: argparse.Namespace):
    from uss.data.split import ImageNetSSplit
    from uss.stages.pixel_attention import load_pixel_attention_model

    runner.setup_device()
    log = runner.StageLog(f"sam_refine {args.mode}", args.sweep_dir)
    split = ImageNetSSplit(args.data, args.split or ("validation" if args.mode == "sweep" else "train"))
    centroids = pixel.load_centroids(args.centroids or os.path.join(args.cluster_dir, "centroids.npy"))
    pixel_threshold, pixel_side, pixel_source = pixel.resolve_threshold(
        args.pixel_threshold, os.path.join(args.cluster_dir, pixel.THRESHOLD_FILE), args.pixel_background)
    proposer = proposer_from_args(args)
    log.info(f"regions: {proposer.describe()}")
    if args.proposer == "superpixel":
        log.info("note: superpixel regions stand in for SAM masks (no SAM weights); pass --proposer sam "
                 "--sam-checkpoint weights/sam_vit_b_01ec64.pth for the real thing")
    labeler = MaskLabeler(pixel.PixelLabeler(load_pixel_attention_model(args.pretrained), centroids, args.short_side),
                          proposer, pixel_threshold, pixel_side)
    log.info(f"per-pixel threshold {pixel_threshold:.3f}, background {pixel_side} (from {pixel_source}) for "
             f"uncovered pixels")
    if args.mode == "sweep":
        thresholds = pixel.resolve_thresholds(args.thresholds, lambda image: labeler.labeler(image)[1], split)
        chosen = pixel.sweep(labeler.prepare, split, thresholds, len(centroids),
                             args.sweep_dir, label_source=f"mask ({args.proposer})")
        log.info(f"chosen mask threshold {chosen['threshold']:.3f}, background {chosen['background']} (validation "
                 f"mIoU {100 * chosen['mIoU']:.2f}) -> "
                 f"{os.path.join(args.sweep_dir, pixel.THRESHOLD_FILE)}")
        return chosen
    if not args.out:
        raise InputError("generate needs --out (the pseudo-label folder)")
    threshold, side, source = pixel.resolve_threshold(args.threshold, os.path.join(args.sweep_dir, pixel.THRESHOLD_FILE),
                                                      args.background)
    log.info(f"labelling {len(split)} images of {split.image_dir} with mask threshold {threshold:.3f}, background "
             f"{side} (from {source})")
    counts = pixel.generate(lambda image, index: labeler(image, threshold, side), pixel.shard_of(split, args.shard), args.out,
                            f"mask pseudo labels ({split.split})")
    log.info(f"{counts['written']} written, {counts['skipped']} already done, {counts['failed']} failed -> {args.out}")
    return counts


def main(argv: Optional[List[str]] = None) -> None:
    run(build_parser().parse_args(argv))
