"""Image augmentations with an explicit numpy Generator, so every crop is reproducible from a seed.

Images are HxWx3 uint8 RGB arrays. `random_resized_crop` also returns the crop rectangle in the
source image (left, top, width, height) and `random_flip` the flip flag; PASS's pixel-to-pixel
loss needs both to find where two crops overlap. Resizes are PIL bilinear (anti-aliased), as PASS's
torchvision transforms (uss.data.imageops).
"""
import math
from typing import Sequence, Tuple

import cv2
import numpy as np

from uss.data import imageops

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.228, 0.224, 0.225], dtype=np.float32)
# PASS's fine-tuning / inference normalisation (torchvision's ImageNet values).
FINETUNE_MEAN = (0.485, 0.456, 0.406)
FINETUNE_STD = (0.229, 0.224, 0.225)


def crop_rectangle(height: int, width: int, scale: Tuple[float, float], ratio: Tuple[float, float],
                   rng: np.random.Generator) -> Tuple[int, int, int, int]:
    """(left, top, w, h) of a random crop covering `scale` of the area at aspect `ratio` (Inception-style)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = rng.uniform(*scale) * area
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def random_resized_crop(image: np.ndarray, size: int, scale: Tuple[float, float], rng: np.random.Generator,
                        ratio: Tuple[float, float] = (3 / 4, 4 / 3)) -> Tuple[np.ndarray, Tuple[int, int, int, int]]:
    """A random crop resized to size x size, and its rectangle (left, top, w, h) in `image`."""
    left, top, w, h = crop_rectangle(image.shape[0], image.shape[1], scale, ratio, rng)
    return imageops.resize_bilinear(image[top:top + h, left:left + w], size, size), (left, top, w, h)


def random_flip(image: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> Tuple[np.ndarray, bool]:
    """Horizontal flip with probability p; returns the image and whether it was flipped."""
    if rng.random() < p:
        return np.ascontiguousarray(image[:, ::-1]), True
    return image, False


def _gray(image: np.ndarray) -> np.ndarray:
    return image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def color_distortion(image: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """SimCLR/SwAV colour distortion: jitter (p 0.8, random order) then grey (p 0.2)."""
    out = image.astype(np.float32)
    if rng.random() < 0.8:
        amount = 0.8 * strength
        for op in rng.permutation(4):
            if op == 0:
                out = out * rng.uniform(max(0.0, 1 - amount), 1 + amount)
            elif op == 1:
                mean = _gray(np.clip(out, 0, 255)).mean()
                out = (out - mean) * rng.uniform(max(0.0, 1 - amount), 1 + amount) + mean
            elif op == 2:
                gray = _gray(out)[..., None]
                out = (out - gray) * rng.uniform(max(0.0, 1 - amount), 1 + amount) + gray
            else:
                shift = rng.uniform(-0.2 * strength, 0.2 * strength)
                hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
                hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(shift * 180))) % 180).astype(np.uint8)
                out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
            out = np.clip(out, 0, 255)
    if rng.random() < 0.2:
        out = np.repeat(_gray(out)[..., None], 3, axis=2)
    return np.clip(out, 0, 255).astype(np.uint8)


def random_blur(image: np.ndarray, rng: np.random.Generator, p: float = 0.5,
                sigma: Tuple[float, float] = (0.1, 2.0)) -> np.ndarray:
    """Gaussian blur with probability p and a random sigma."""
    if rng.random() >= p:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(rng.uniform(*sigma)))


def normalize(image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """uint8 HxWx3 -> float32 3xHxW, scaled to [0, 1] then standardised."""
    out = (image.astype(np.float32) / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def network_input(image: np.ndarray, short_side: int = 256) -> np.ndarray:
    """HxWx3 uint8 -> float32 3 x h x w as PASS's evaluation transform: short side resized to `short_side` (PIL
    bilinear, torchvision's Resize sizes: the long side truncated), normalised with torchvision's statistics."""
    return normalize(imageops.resize_short_side(image, short_side), FINETUNE_MEAN, FINETUNE_STD)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window (the image must be at least that large); offsets as torchvision's
    CenterCrop, int(round((side - size) / 2))."""
    height, width = image.shape[:2]
    top, left = max(0, int(round((height - size) / 2.0))), max(0, int(round((width - size) / 2.0)))
    return image[top:top + size, left:left + size]
