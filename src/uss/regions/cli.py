"""The region proposers' command-line settings, shared by sam_refine.py and test.py."""
import argparse

from uss.regions.base import RegionProposer, build_proposer


def add_proposer_arguments(parser: argparse.ArgumentParser) -> None:
    """--proposer and the SAM / superpixel settings (shared with test.py)."""
    group = parser.add_argument_group("region proposer")
    group.add_argument("--proposer", choices=["sam", "superpixel"], required=True)
    group.add_argument("--sam-checkpoint", default=None, help="official SAM weights, e.g. weights/sam_vit_b_01ec64.pth")
    group.add_argument("--sam-model-type", default="vit_b", help="vit_b | vit_l | vit_h")
    group.add_argument("--points-per-side", type=int, default=64)
    group.add_argument("--points-per-batch", type=int, default=64)
    group.add_argument("--pred-iou-thresh", type=float, default=0.86)
    group.add_argument("--stability-score-thresh", type=float, default=0.92)
    group.add_argument("--crop-n-layers", type=int, default=1)
    group.add_argument("--crop-n-points-downscale-factor", type=int, default=2)
    group.add_argument("--min-mask-region-area", type=int, default=100)
    group.add_argument("--superpixel-method", default="felzenszwalb", choices=["felzenszwalb", "slic"])
    group.add_argument("--superpixel-scale", type=float, default=100.0, help="felzenszwalb scale")
    group.add_argument("--superpixel-sigma", type=float, default=0.8)
    group.add_argument("--superpixel-min-size", type=int, default=50)
    group.add_argument("--superpixel-segments", type=int, default=100, help="slic n_segments")


def proposer_from_args(args: argparse.Namespace) -> RegionProposer:
    """The proposer the parsed --proposer settings describe."""
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
