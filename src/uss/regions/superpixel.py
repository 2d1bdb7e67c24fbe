"""Superpixel regions from scikit-image (Felzenszwalb's graph segmentation or SLIC); no weights needed."""
from typing import List

import numpy as np

from uss.regions.base import RegionProposer
from uss.regions.settings import SUPERPIXEL_SETTINGS as DEFAULTS


class SuperpixelProposer(RegionProposer):
    """Every superpixel segment becomes one region (a partition of the image)."""

    name = "superpixel"

    def __init__(self, method: str = DEFAULTS["method"], scale: float = DEFAULTS["scale"],
                 sigma: float = DEFAULTS["sigma"], min_size: int = DEFAULTS["min_size"],
                 n_segments: int = DEFAULTS["n_segments"], compactness: float = DEFAULTS["compactness"]):
        """method: 'felzenszwalb' (graph segmentation: `scale` larger = larger segments, Gaussian pre-smoothing
        `sigma`, segments of at least `min_size` pixels) or 'slic' (about `n_segments` k-means superpixels,
        `compactness` trading colour for space); scikit-image's arguments. Defaults and the scripts' presets:
        uss.regions.settings."""
        if method not in ("felzenszwalb", "slic"):
            raise ValueError(f"superpixel method must be 'felzenszwalb' or 'slic', got {method!r}")
        self.method, self.scale, self.sigma, self.min_size = method, scale, sigma, min_size
        self.n_segments, self.compactness = n_segments, compactness

    def segments(self, image: np.ndarray) -> np.ndarray:
        """HxW int segment ids."""
        from skimage.segmentation import felzenszwalb, slic

        if self.method == "felzenszwalb":
            return felzenszwalb(image, scale=self.scale, sigma=self.sigma, min_size=self.min_size)
        return slic(image, n_segments=self.n_segments, compactness=self.compactness, start_label=0)

    def propose(self, image: np.ndarray) -> List[np.ndarray]:
        segments = self.segments(image)
        return [segments == value for value in np.unique(segments)]

    def describe(self) -> str:
        if self.method == "felzenszwalb":
            return f"superpixel (felzenszwalb scale={self.scale}, sigma={self.sigma}, min_size={self.min_size})"
        return f"superpixel (slic n_segments={self.n_segments}, compactness={self.compactness})"
