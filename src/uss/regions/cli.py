"""The region proposer that parsed command-line settings describe (the options themselves: uss.options.regions)."""
import argparse

from uss.regions.base import RegionProposer, build_proposer


def proposer_from_args(args: argparse.Namespace) -> RegionProposer:
    """The proposer the parsed --proposer settings describe."""
    if args.proposer == "sam":
        settings = dict(points_per_side=args.points_per_side, points_per_batch=args.points_per_batch,
                        pred_iou_thresh=args.pred_iou_thresh, stability_score_thresh=args.stability_score_thresh,
                        crop_n_layers=args.crop_n_layers,
                        crop_n_points_downscale_factor=args.crop_n_points_downscale_factor,
                        min_mask_region_area=args.min_mask_region_area)
    else:
        settings = dict(method=args.superpixel_method, scale=args.superpixel_scale, sigma=args.superpixel_sigma,
                        min_size=args.superpixel_min_size, n_segments=args.superpixel_segments)
    return build_proposer(args.proposer, args.sam_checkpoint, args.sam_model_type, settings)
