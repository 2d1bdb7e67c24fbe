"""Image resizing as PASS does it: PIL's bilinear filter (anti-aliased when shrinking) and torchvision's sizes.

PASS's transforms (torchvision on PIL images: RandomResizedCrop, Resize(256)) all resize with PIL's BILINEAR
filter, which widens its triangle kernel by the scale factor when shrinking, so every source pixel under an
output pixel contributes. OpenCV's INTER_LINEAR samples only the 2x2 nearest pixels and aliases on a shrink
(a 500 px photo cut to a 96 px crop loses most of its pixels). Every image resize of the pipeline goes
through `resize_bilinear`, which is PIL's own, so outputs equal PASS's bit for bit.
"""
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
