"""A background threshold chosen from the data alone, for images without any ground truth.

The ground-truth sweep (`uss.labeling.threshold.sweep`) needs validation masks. Without them the threshold and
its side come from three assumptions about the attention, all stated here and in docs/data_and_evaluation.md:

1. **Every image holds some object and some background**, so each image's attention is read standardised (minus
   its mean, over its standard deviation; `threshold.PER_IMAGE`): what varies from image to image in the
   attention's level and spread (a busy background, a dim photo) is removed before one threshold is chosen for all.
   Measured on the demo and the stage-ceiling backbone (docs/data_and_evaluation.md): Otsu on the raw attention
   fell 4.3-6.6 mIoU points below the ground-truth sweep; on the standardised attention it lands within 0.1 of it
   or above.
2. **Two populations.** The standardised attention values of foreground and background pixels form two groups;
   the threshold is Otsu's (1979): the split of their histogram that maximises the between-group variance. For
   mask labels the values are the masks' mean attentions, each weighted by its area, since that is what the
   threshold is applied to.
3. **Objects rarely fill the frame's edge.** Of the two sides, background is the one the image border holds more
   of than the interior does (the border prior of saliency detection). Object-centric photos (ImageNet, product
   shots) satisfy it; aerial tiles or textures, where the "object" fills the frame, do not: pass --background
   there.

Both are computed on up to `max_images` images spread evenly over the split (train by default: no labels read).
"""
import os
import sys
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from uss.atomic import atomic_write_json
from uss.data.image_io import ImageFileError
from uss.data.split import ImageNetSSplit
from uss.labeling.threshold import ABOVE, BELOW, PER_IMAGE, SIDES, THRESHOLD_FILE
from uss.plots import line_chart, save_png

METHOD = "label-free: Otsu threshold of the attention standardised per image, background side by the border prior"
BORDER_FRACTION = 0.1  # the frame, as a share of the short side, that counts as the image border
MAP_SHORT_SIDE = 128  # attention maps are read at most this large: 200 photos at full size would not fit in memory


def otsu_threshold(values: np.ndarray, weights: Optional[np.ndarray] = None, bins: int = 256) -> float:
    """The value that splits a 1-D sample into two groups of largest between-group variance (Otsu's method);
    values above it form the upper group. A constant sample returns its value."""
    values = np.asarray(values, np.float64).ravel()
    if values.size == 0:
        raise ValueError("otsu_threshold needs at least one value")
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return low
    counts, edges = np.histogram(values, bins=bins, range=(low, high), weights=weights)
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)[:-1]
    above = counts.sum() - below
    below_sum = np.cumsum(counts * centres)[:-1]
    mean_below = below_sum / np.maximum(below, 1e-12)
    mean_above = (float((counts * centres).sum()) - below_sum) / np.maximum(above, 1e-12)
    between = below * above * (mean_below - mean_above) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def small_map(attention: np.ndarray, short_side: int = MAP_SHORT_SIDE) -> np.ndarray:
    """The attention map scaled down (area interpolation) so its short side is at most `short_side`."""
    height, width = attention.shape
    scale = short_side / min(height, width)
    if scale >= 1:
        return attention.astype(np.float32)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(attention.astype(np.float32), size, interpolation=cv2.INTER_AREA)


def pixel_values(attention: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`choose`'s values for per-pixel labels: the (scaled-down) attention map, every pixel weighted 1."""
    small = small_map(attention)
    return small, np.ones(small.size, np.float64), small


def mask_values(masks: Sequence[np.ndarray], mask_attention: np.ndarray) -> Tuple[np.ndarray, np.ndarray, None]:
    """`choose`'s values for mask labels: each mask's mean attention, weighted by its area (no map: the mask
    labels keep the per-pixel labels' side)."""
    return np.asarray(mask_attention, np.float64), np.array([float(m.sum()) for m in masks], np.float64), None


def border_mask(height: int, width: int, fraction: float = BORDER_FRACTION) -> np.ndarray:
    """Boolean HxW frame of width `fraction` of the short side (at least one pixel)."""
    band = max(1, int(round(fraction * min(height, width))))
    mask = np.ones((height, width), bool)
    mask[band:height - band, band:width - band] = False
    return mask


def above_shares(attention: np.ndarray, threshold: float) -> Tuple[int, int, int, int]:
    """(border pixels above, border pixels, interior pixels above, interior pixels) of one attention map."""
    border = border_mask(*attention.shape)
    above = attention > threshold
    return int(above[border].sum()), int(border.sum()), int(above[~border].sum()), int((~border).sum())


def border_side(shares: Sequence[Tuple[int, int, int, int]]) -> Tuple[str, float, float]:
    """(background side, share of border pixels above, share of interior pixels above): background is the side
    the border holds more of than the interior; a tie keeps PASS's 'below'."""
    totals = np.asarray(shares, np.float64).sum(axis=0)
    border_above = totals[0] / max(totals[1], 1.0)
    interior_above = totals[2] / max(totals[3], 1.0)
    return (ABOVE if border_above > interior_above else BELOW), float(border_above), float(interior_above)


def choose(values_of: Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]],
           split: ImageNetSSplit, out_dir: str, label_source: str = "per-pixel", side: Optional[str] = None,
           max_images: int = 200, attention_scale: str = PER_IMAGE) -> Dict[str, object]:
    """Choose (threshold, background side) without labels; write threshold.json and threshold_histogram.png.

    `values_of(image)` returns (values, their weights, attention map or None): the values the threshold is applied
    to (`pixel_values` or `mask_values`, of attention read in `attention_scale`, which threshold.json records) and
    the map the border prior reads. With `side` given (the mask labels reuse the per-pixel side) the border prior
    is not consulted."""
    if side is not None and side not in SIDES:
        raise ValueError(f"background side must be one of {SIDES}, got {side!r}")
    picks = np.unique(np.linspace(0, len(split) - 1, min(max_images, len(split))).round().astype(int))
    values, weights, maps = [], [], []
    start = time.time()
    bar = tqdm(picks, desc=f"label-free threshold ({label_source}) on {split.split}", unit="img")
    for index in bar:
        try:
            image = split.load(int(index)).image
        except ImageFileError as error:
            tqdm.write(f"warning: label-free threshold: skipping {error}", file=sys.stderr)
            continue
        value, weight, attention = values_of(image)
        values.append(np.asarray(value, np.float64).ravel())
        weights.append(np.asarray(weight, np.float64).ravel())
        if attention is not None:
            maps.append(attention)
        bar.set_postfix(img_s=f"{len(values) / (time.time() - start):.1f}")
    if not values:
        raise ImageFileError(f"label-free threshold: none of the {len(picks)} images read from {split.image_dir} "
                             f"could be decoded")
    values_all, weights_all = np.concatenate(values), np.concatenate(weights)
    threshold = otsu_threshold(values_all, weights_all)
    chosen = {"threshold": threshold, "background": side, "mIoU": None, "attention": attention_scale,
              "method": METHOD, "side_from": "given",
              "split": split.split, "labels": label_source, "images": len(values)}
    if side is None:
        if not maps:
            raise ValueError("the border prior needs the attention maps: values_of returned none")
        side, border_above, interior_above = border_side([above_shares(m, threshold) for m in maps])
        chosen.update(background=side, side_from="border prior", border_share_above=border_above,
                      interior_share_above=interior_above)
    os.makedirs(out_dir, exist_ok=True)
    counts, edges = np.histogram(values_all, bins=64, weights=weights_all)
    chart = line_chart(list((edges[:-1] + edges[1:]) / 2), {"share": counts / max(counts.sum(), 1e-12)},
                       f"{label_source} labels, label-free: threshold {threshold:.3f}, background {side}",
                       "attention", "share", threshold)
    save_png(os.path.join(out_dir, "threshold_histogram.png"), chart)
    atomic_write_json(os.path.join(out_dir, THRESHOLD_FILE), chosen)
    return chosen
