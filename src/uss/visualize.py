"""Label-map visualisation: deterministic class palette, colourised labels and image overlays.

Background (0) is black in the palette and left untouched in overlays; the ignore label (1000) is
drawn white (ignore_color()), never taken from the palette.
"""
import colorsys
from typing import Optional, Tuple

import numpy as np

from uss.data.label_png import IGNORE

GOLDEN = 0.618033988749895
_SATURATIONS = (0.85, 0.6, 0.95, 0.7)
_VALUES = (0.95, 0.75, 0.85, 0.65, 1.0)


def ignore_color() -> Tuple[int, int, int]:
    """Colour of ignored pixels (label 1000): white."""
    return (255, 255, 255)


def palette(n: int) -> np.ndarray:
    """(n, 3) uint8 distinct colours, deterministic; row 0 is black (background).

    Hues step by the golden ratio, saturation and value cycle with co-prime periods, so neighbouring
    ids differ strongly; the rare rounding collision is nudged until every row is unique. No row is
    black (except 0) or white.
    """
    if n < 0:
        raise ValueError(f"palette size must be >= 0, got {n}")
    colors = np.zeros((n, 3), dtype=np.uint8)
    seen = {(0, 0, 0), ignore_color()}
    for i in range(1, n):
        hue = (i * GOLDEN) % 1.0
        sat = _SATURATIONS[i % len(_SATURATIONS)]
        val = _VALUES[i % len(_VALUES)]
        step = 0
        while True:
            rgb = tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb((hue + step * 1e-3) % 1.0, sat, val))
            if rgb not in seen:
                break
            step += 1
        seen.add(rgb)
        colors[i] = rgb
    return colors


def colorize(label: np.ndarray, colors: Optional[np.ndarray] = None) -> np.ndarray:
    """HxW ids -> HxWx3 uint8 RGB: palette colours, 0 black, 1000 white."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label map must be 2-D, got shape {label.shape}")
    if label.size and label.min() < 0:
        raise ValueError("label ids must be non-negative")
    ignore = label == IGNORE
    ids = np.where(ignore, 0, label).astype(np.int64)
    top = int(ids.max()) if ids.size else 0
    if colors is None or len(colors) <= top:
        colors = palette(top + 1)
    out = np.asarray(colors, dtype=np.uint8)[ids]
    out[ignore] = ignore_color()
    return out


def _inner_contour(label: np.ndarray) -> np.ndarray:
    """Bool map of pixels whose 4-neighbourhood holds another label (image border excluded)."""
    edge = np.zeros(label.shape, dtype=bool)
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    edge[:-1, :] |= label[:-1, :] != label[1:, :]
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[:, :-1] |= label[:, :-1] != label[:, 1:]
    return edge


def overlay(image_rgb: np.ndarray, label: np.ndarray, alpha: float = 0.5, contours: bool = False,
            colors: Optional[np.ndarray] = None) -> np.ndarray:
    """Blend class colours over an HxWx3 image; background pixels stay unchanged, ignore blends to white.

    contours: draw each class region's inner outline in its full colour (foreground pixels only).
    """
    image = np.asarray(image_rgb)
    label = np.asarray(label)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be HxWx3, got shape {image.shape}")
    if label.shape != image.shape[:2]:
        raise ValueError(f"label {label.shape} and image {image.shape[:2]} differ in size")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    image = image.astype(np.uint8)
    color = colorize(label, colors).astype(np.float32)
    painted = label != 0
    out = image.copy()
    blend = (1.0 - alpha) * image.astype(np.float32) + alpha * color
    out[painted] = np.clip(np.rint(blend[painted]), 0, 255).astype(np.uint8)
    if contours:
        edge = _inner_contour(label) & painted & (label != IGNORE)
        out[edge] = color[edge].astype(np.uint8)
    return out
