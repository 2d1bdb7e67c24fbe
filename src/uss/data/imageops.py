"""Image resizing as PASS does it: PIL's bilinear filter (anti-aliased when shrinking) and torchvision's sizes.

PASS's transforms (torchvision on PIL images: RandomResizedCrop, Resize(256)) all resize with PIL's BILINEAR
filter, which widens its triangle kernel by the scale factor when shrinking, so every source pixel under an
output pixel contributes. OpenCV's INTER_LINEAR samples only the 2x2 nearest pixels and aliases on a shrink
(a 500 px photo cut to a 96 px crop loses most of its pixels). Every image resize of the pipeline goes
through `resize_bilinear`, which is PIL's own, so outputs equal PASS's bit for bit.

Logits and SAM's masks are resized as torch's F.interpolate(mode="bilinear", align_corners=False) does, by
`bilinear_matrix` (one matrix product per axis).
"""
from functools import lru_cache
from typing import Tuple

import numpy as np
from PIL import Image


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """HxW or HxWx3 uint8 -> height x width (x 3) with PIL's bilinear filter (anti-aliased when shrinking)."""
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.BILINEAR))


def short_side_size(height: int, width: int, short: int) -> Tuple[int, int]:
    """(h, w) with the shorter side `short` and the longer int(short * long / short side), as torchvision's Resize."""
    if height <= width:
        return short, max(1, int(short * width / height))
    return max(1, int(short * height / width)), short


def resize_short_side(image: np.ndarray, short: int) -> np.ndarray:
    """Resize so the shorter side is `short` pixels (torchvision's Resize(short) on a PIL image)."""
    return resize_bilinear(image, *short_side_size(image.shape[0], image.shape[1], short))


@lru_cache(maxsize=64)
def bilinear_matrix(in_len: int, out_len: int, compute: type = np.float32, dtype: type = np.float64) -> np.ndarray:
    """(out_len, in_len) read-only matrix of a 1-D bilinear resize, half-pixel centres, no antialias.

    Source positions are computed in `compute` precision (float32 as torch's CPU kernel; SAM's post-processing
    uses it), the weights stored as `dtype`."""
    scale = compute(in_len) / compute(out_len)
    src = np.maximum(scale * (np.arange(out_len, dtype=compute) + compute(0.5)) - compute(0.5), compute(0.0))
    low = np.minimum(src.astype(np.int64), in_len - 1)
    high = np.minimum(low + 1, in_len - 1)
    frac = (src - low.astype(compute)).astype(dtype)
    matrix = np.zeros((out_len, in_len), dtype=dtype)
    rows = np.arange(out_len)
    np.add.at(matrix, (rows, low), 1.0 - frac)
    np.add.at(matrix, (rows, high), frac)
    matrix.flags.writeable = False
    return matrix
