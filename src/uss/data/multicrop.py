"""SwAV multi-crop views with PASS's overlap grids, reproducible per (seed, epoch, image).

Every random choice for image i in epoch e comes from numpy's Generator seeded with
(seed, e, i), so a run resumed at an epoch boundary sees exactly the crops an uninterrupted run
sees, independently of loader workers and MPI ranks.
"""
from typing import List, Sequence, Tuple

import numpy as np

from uss.data import augment
from uss.data.epochs import EpochDataset
from uss.data.image_io import ImageFileError, load_rgb
from uss.data.split import ImageNetSSplit

Rect = Tuple[int, int, int, int]


def overlap_grids(rect_q: Rect, flip_q: bool, rect_k: Rect, flip_k: bool,
                  size: int = 7) -> Tuple[np.ndarray, np.ndarray]:
    """size x size x 2 sampling grids (x, y in [-1, 1]) of the two crops' overlap, each in its own crop's
    coordinates (flips applied); without overlap both are filled with -2 (outside: sampled as zeros)."""
    left = max(rect_q[0], rect_k[0])
    top = max(rect_q[1], rect_k[1])
    right = min(rect_q[0] + rect_q[2], rect_k[0] + rect_k[2])
    bottom = min(rect_q[1] + rect_q[3], rect_k[1] + rect_k[3])
    if left >= right or top >= bottom:
        empty = np.full((size, size, 2), -2.0, dtype=np.float32)
        return empty, empty.copy()
    steps = np.linspace(0.0, 1.0, size, dtype=np.float64)
    grids = []
    for (x0, y0, w, h), flip in ((rect_q, flip_q), (rect_k, flip_k)):
        xs = (left - x0 + steps * (right - left)) / w
        ys = (top - y0 + steps * (bottom - top)) / h
        if flip:
            xs = 1.0 - xs
        grid = np.empty((size, size, 2), dtype=np.float32)
        grid[..., 0] = xs[None, :]
        grid[..., 1] = ys[:, None]
        grids.append(2.0 * grid - 1.0)
    return grids[0], grids[1]


class MultiCropDataset(EpochDataset):
    """Items: (list of crops as float32 3xSxS, grid of view 0, grid of view 1, error message or "")."""

    def __init__(self, split: ImageNetSSplit, size_crops: Sequence[int], nmb_crops: Sequence[int],
                 min_scale_crops: Sequence[float], max_scale_crops: Sequence[float], seed: int = 0,
                 grid_size: int = 7, batch_size: int = 32, num_workers: int = 0, blur_sigma: float = 2.0,
                 color_strength: float = 1.0):
        super().__init__(batch_size=batch_size, shuffle=False, drop_last=True, num_workers=num_workers)
        if not (len(size_crops) == len(nmb_crops) == len(min_scale_crops) == len(max_scale_crops)):
            raise ValueError("size_crops, nmb_crops, min_scale_crops and max_scale_crops must have equal lengths")
        if nmb_crops[0] < 2:
            raise ValueError("PASS needs at least two crops of the first (large) size")
        self.split = split
        self.specs: List[Tuple[int, Tuple[float, float]]] = []
        for size, count, low, high in zip(size_crops, nmb_crops, min_scale_crops, max_scale_crops):
            self.specs += [(int(size), (float(low), float(high)))] * int(count)
        self.grid_size = grid_size
        self.blur_sigma, self.color_strength = blur_sigma, color_strength
        self.use_epoch_sampler(len(split), seed)

    def make_views(self, image: np.ndarray, rng: np.random.Generator):
        """All crops of one image, plus the overlap grids of the first two."""
        crops, geometry = [], []
        for size, scale in self.specs:
            crop, rect = augment.random_resized_crop(image, size, scale, rng)
            crop, flipped = augment.random_flip(crop, rng)
            crop = augment.color_distortion(crop, rng, self.color_strength)
            crop = augment.random_blur(crop, rng, sigma=(0.1, self.blur_sigma))
            crops.append(augment.normalize(crop))
            geometry.append((rect, flipped))
        grid_q, grid_k = overlap_grids(*geometry[0], *geometry[1], size=self.grid_size)
        return crops, grid_q, grid_k

    def __getitem__(self, index: int):
        epoch, image_index = self.split_index(index)
        rng = np.random.default_rng([self.sampler.seed, epoch, image_index])
        try:
            image, error = load_rgb(self.split.image_path(self.split.names[image_index])), ""
        except ImageFileError as failure:
            image, error = np.zeros((64, 64, 3), np.uint8), str(failure)
        crops, grid_q, grid_k = self.make_views(image, rng)
        return crops, grid_q, grid_k, error
