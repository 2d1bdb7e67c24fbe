"""Class weights for the fine-tuning loss from the pseudo labels' pixel counts.

'median-frequency' is median frequency balancing (Eigen & Fergus, "Predicting Depth, Surface Normals and Semantic
Labels with a Common Multi-Scale Convolutional Architecture", ICCV 2015, section 4.3; also SegNet's): class c weighs
median(f) / f_c, where f_c is c's pixels over the pixels of the images that hold c. Ids absent from every label
weigh 0 (no pixel carries them) and are left out of the median. Ignored pixels (1000) count nowhere.
"""
from typing import Sequence

import numpy as np
from tqdm import tqdm

from uss.data.label_dataset import pseudo_label_path
from uss.data.label_png import IGNORE, LabelFileError, read_label_png

NONE, MEDIAN_FREQUENCY = "none", "median-frequency"
SCHEMES = (NONE, MEDIAN_FREQUENCY)

__all__ = ["SCHEMES", "NONE", "MEDIAN_FREQUENCY", "label_frequencies", "class_weights"]


def label_frequencies(label_dir: str, names: Sequence[str], num_classes: int) -> np.ndarray:
    """2 x (K+1) int64: per id 0..K, its pixels and the pixels of the images that hold it. Unreadable label files
    are skipped (the training loader reports them)."""
    counts = np.zeros((2, num_classes + 1), np.int64)
    for name in tqdm(names, desc="class frequencies of the pseudo labels", unit="img", mininterval=2):
        try:
            label = read_label_png(pseudo_label_path(label_dir, name))
        except LabelFileError:
            continue
        ids = label[(label != IGNORE) & (label >= 0) & (label <= num_classes)]
        pixels = np.bincount(ids.ravel(), minlength=num_classes + 1)
        counts[0] += pixels
        counts[1] += (pixels > 0) * ids.size
    return counts


def class_weights(frequencies: np.ndarray, scheme: str) -> np.ndarray:
    """Per-id loss weights (float32, K+1) from `label_frequencies`' counts; 'none' weighs every id 1."""
    if scheme not in SCHEMES:
        raise ValueError(f"class weighting {scheme!r} unknown; choose from {', '.join(SCHEMES)}")
    pixels, image_pixels = (np.asarray(row, np.float64) for row in frequencies)
    if scheme == NONE:
        return np.ones(pixels.shape, np.float32)
    present = pixels > 0
    if not present.any():
        raise ValueError("class weighting: the pseudo labels hold no counted pixel")
    frequency = np.zeros_like(pixels)
    frequency[present] = pixels[present] / image_pixels[present]
    weights = np.zeros_like(pixels)
    weights[present] = np.median(frequency[present]) / frequency[present]
    return weights.astype(np.float32)
