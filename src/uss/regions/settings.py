"""The region proposers' settings, defined once: the proposers' constructors, the command-line defaults
(uss.options.regions) and the shell scripts (`python -m uss.regions`) read them here."""
from typing import Any, List, Mapping

__all__ = ["SAM_SETTINGS", "SAM_POINTS_PER_BATCH", "SAM_MODEL_TYPE", "SUPERPIXEL_SETTINGS", "SUPERPIXEL_PRESETS",
           "sam_flags", "superpixel_flags"]

# The 2023 challenge entry's automatic-mask-generator settings (ViT-B; design brief, "Facts from the challenge entry").
SAM_SETTINGS = dict(points_per_side=64, pred_iou_thresh=0.86, stability_score_thresh=0.92, crop_n_layers=1,
                    crop_n_points_downscale_factor=2, min_mask_region_area=100)
SAM_POINTS_PER_BATCH = 64  # prompts decoded at once: bounds memory, does not change the masks (SAM's own default)
SAM_MODEL_TYPE = "vit_b"

# SuperpixelProposer's and the CLIs' defaults (scikit-image's felzenszwalb / slic arguments).
SUPERPIXEL_SETTINGS = dict(method="felzenszwalb", scale=100.0, sigma=0.8, min_size=50, n_segments=100,
                           compactness=10.0)
# The shell scripts' presets: this project's stand-in for SAM masks, no published recipe. The demo's 64-px images
# take smaller segments than ImageNet's.
SUPERPIXEL_PRESETS = {
    "demo": dict(method="felzenszwalb", scale=100, sigma=0.8, min_size=20),
    "paper": dict(method="felzenszwalb", scale=300, sigma=0.8, min_size=200),
}
SUPERPIXEL_FLAGS = dict(method="--superpixel-method", scale="--superpixel-scale", sigma="--superpixel-sigma",
                        min_size="--superpixel-min-size", n_segments="--superpixel-segments")


def _words(flags: Mapping[str, str], values: Mapping[str, Any]) -> List[str]:
    return [word for key, value in values.items() for word in (flags[key], str(value))]


def sam_flags() -> List[str]:
    """The SAM generator's command-line flags (sam_refine.py, test.py) with the challenge entry's values."""
    settings = {"points_per_side": SAM_SETTINGS["points_per_side"], "points_per_batch": SAM_POINTS_PER_BATCH,
                **SAM_SETTINGS}
    return _words({key: "--" + key.replace("_", "-") for key in settings}, settings)


def superpixel_flags(preset: str) -> List[str]:
    """A shell preset's ('demo' or 'paper') superpixel flags."""
    if preset not in SUPERPIXEL_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(SUPERPIXEL_PRESETS)}")
    return _words(SUPERPIXEL_FLAGS, SUPERPIXEL_PRESETS[preset])
