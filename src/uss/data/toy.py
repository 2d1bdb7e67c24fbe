"""Toy ImageNet-S: a small synthetic dataset in the exact ImageNet-S layout, for demos and tests.

``python -m uss.data.toy --out data/toy`` writes, in a few seconds on a CPU, 10 classes of 64x64 RGB
JPEGs (100 train, 8 validation and 8 test images per class by default) with ImageNet-S label PNGs for
validation and test (id = R + 256 * G; 0 background, 1..K classes, 1000 ignore on a 2-px band along
every object border), plus ``categories.txt``, ``names/<split>.txt`` and ``toy.json`` (the parameters
and a summary, written last). Class folders are fake ImageNet-style wnids (``n00000001`` ...), train
images are named ``<wnid>_<8 digits>.JPEG`` and validation/test images ``ILSVRC2012_val_<8 digits>.JPEG``.

Each class is one shape with its own texture (disc/stripes, square/dots, triangle/checkerboard,
star/solid, cross/waves, ring/speckle, hexagon/concentric rings, crescent/grid, heart/noise blobs,
arrow/spokes; more classes reuse the shapes with other textures, up to 100) and, as natural categories
have (``palette="natural"``, the default), a typical colour: a base hue per class, evenly spaced around
the hue circle, jittered per image by 0.7 of the spacing either way, so that neighbouring classes share
hues and colour alone does not tell the class (k-means on hue histograms stays near NMI 0.3,
``benchmarks/demo_data.py``); saturation and brightness vary per image, and the texture's second colour
is a lighter or darker shade of the first or, in a fifth of the objects, any colour. Shading, object size
(about 10% to 60% of the image), position and rotation are drawn independently of the class.
``palette="random"`` gives the first version's data: both colours independent of the class and objects
from 5% of the image. Backgrounds are cluttered: a colour gradient, smooth and pixel noise, and low-contrast thin lines
and small blobs (background, label 0). About a quarter of the images hold a second object of a different
class (the folder names the main, larger object; the masks carry both); objects may overlap partly
and the later-drawn one is on top in image and mask. Output is deterministic: each image draws from
its own generator seeded by (seed, split, class, index), so the same seed gives byte-identical files.
"""
import argparse
import colorsys
import io
import json
import math
import os
import shutil
import time
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from uss.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from uss.data.label_png import BACKGROUND, IGNORE, write_label_png
from uss.data.layout import image_dir, label_name, segmentation_dir
from uss.errors import InputError, run_cli

GENERATOR = "uss.data.toy"
VERSION = 2
PALETTES = ("natural", "random")  # class-typical colours (the default), or colours independent of the class (v1)
SUMMARY_FILE = "toy.json"
PARTIAL_MARKER = ".toy-incomplete"
SPLITS = ("train", "validation", "test")
SEGMENTED_SPLITS = ("validation", "test")
SPLIT_CODES = {"train": 1, "validation": 2, "test": 3}
JPEG_QUALITY = 95
MIN_AREA, MAX_AREA = 0.05, 0.60  # object area as a fraction of the image
# Natural palette: larger smallest objects (SwAV's crops see more of the object; the demo's 8x8 C5 cells, too).
NATURAL_MIN_AREA = 0.10
HUE_JITTER = 0.7  # per-image hue jitter, +- this fraction of the spacing between class hues
SHADE_RATE = 0.8  # share of objects whose second colour is a shade of the first (else any colour)
TWO_OBJECT_RATE = 0.25
DEFAULT_SIZE, DEFAULT_TRAIN_PER_CLASS = 64, 100  # the demo dataset (README: "The demo dataset")

SHAPES = ("disc", "square", "triangle", "star", "cross", "ring", "hexagon", "crescent", "heart", "arrow")
TEXTURES = ("stripes", "dots", "checkerboard", "solid", "waves", "speckle", "rings", "grid", "blobs", "spokes")
MAX_CLASSES = len(SHAPES) * len(TEXTURES)


class ToyDatasetError(InputError, ValueError):
    """A toy-dataset request that cannot be carried out; the message is one line."""


# ----------------------------------------------------------------------------------------------
# Shapes: signed distance (negative inside) in unit coordinates; the object fits in radius ~1.


def _convex(x: np.ndarray, y: np.ndarray, verts: Sequence[Tuple[float, float]]) -> np.ndarray:
    """Max of the edge half-plane distances of a convex polygon (exact inside, corners kept sharp)."""
    pts = np.asarray(verts, dtype=np.float64)
    centre = pts.mean(axis=0)
    out = None
    for i in range(len(pts)):
        a, b = pts[i], pts[(i + 1) % len(pts)]
        normal = np.array([b[1] - a[1], a[0] - b[0]])
        normal /= np.linalg.norm(normal)
        if normal @ (centre - a) > 0:
            normal = -normal
        d = normal[0] * (x - a[0]) + normal[1] * (y - a[1])
        out = d if out is None else np.maximum(out, d)
    return out


def _regular(n: int, radius: float = 1.0, start: float = -90.0) -> List[Tuple[float, float]]:
    return [(radius * math.cos(math.radians(start + 360.0 * k / n)),
             radius * math.sin(math.radians(start + 360.0 * k / n))) for k in range(n)]


def _circle(x: np.ndarray, y: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    return np.hypot(x - cx, y - cy) - r


def _tangent_point(point: Tuple[float, float], centre: Tuple[float, float], r: float,
                   sign: float) -> Tuple[float, float]:
    """Point where a line through `point` touches the circle (centre, r); sign picks the side."""
    dx, dy = point[0] - centre[0], point[1] - centre[1]
    angle = math.atan2(dy, dx) + sign * math.acos(r / math.hypot(dx, dy))
    return centre[0] + r * math.cos(angle), centre[1] + r * math.sin(angle)


_STAR_OUT = _regular(5, 1.0)
_STAR_IN = _regular(5, 0.45, start=-90.0 + 36.0)
_HEART_L, _HEART_R, _HEART_R0, _HEART_TIP = (-0.42, -0.3), (0.42, -0.3), 0.48, (0.0, 0.95)
_HEART_BODY = [_HEART_L, _tangent_point(_HEART_TIP, _HEART_L, _HEART_R0, 1.0), _HEART_TIP,
               _tangent_point(_HEART_TIP, _HEART_R, _HEART_R0, -1.0), _HEART_R]


def _star(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = _convex(x, y, _STAR_IN)
    for k in range(5):
        d = np.minimum(d, _convex(x, y, [_STAR_IN[k - 1], _STAR_OUT[k], _STAR_IN[k]]))
    return d


def _heart(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = np.minimum(_circle(x, y, *_HEART_L, _HEART_R0), _circle(x, y, *_HEART_R, _HEART_R0))
    return np.minimum(d, _convex(x, y, _HEART_BODY))


SHAPE_SDF: Dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "disc": lambda x, y: np.hypot(x, y) - 1.0,
    "square": lambda x, y: np.maximum(np.abs(x), np.abs(y)) - 0.75,
    "triangle": lambda x, y: _convex(x, y, _regular(3, 1.0)),
    "star": _star,
    "cross": lambda x, y: np.minimum(np.maximum(np.abs(x) - 0.95, np.abs(y) - 0.3),
                                     np.maximum(np.abs(x) - 0.3, np.abs(y) - 0.95)),
    "ring": lambda x, y: np.abs(np.hypot(x, y) - 0.72) - 0.28,
    "hexagon": lambda x, y: _convex(x, y, _regular(6, 1.0)),
    "crescent": lambda x, y: np.maximum(np.hypot(x, y) - 1.0, -_circle(x, y, 0.45, 0.0, 0.85)),
    "heart": _heart,
    "arrow": lambda x, y: np.minimum(np.maximum(np.abs(x + 0.425) - 0.525, np.abs(y) - 0.2),
                                     _convex(x, y, [(0.1, -0.6), (1.0, 0.0), (0.1, 0.6)])),
}


@lru_cache(maxsize=None)
def _shape_geometry(shape: str) -> Tuple[float, float]:
    """(area, bounding radius) of a unit shape, measured on a fine grid."""
    ticks = (np.arange(1200) + 0.5) / 400.0 - 1.5
    x, y = np.meshgrid(ticks, ticks)
    inside = SHAPE_SDF[shape](x, y) < 0
    area = float(inside.sum()) / 400.0 ** 2
    return area, float(np.hypot(x[inside], y[inside]).max())


# ----------------------------------------------------------------------------------------------
# Textures: fraction of the second colour, in [0, 1], from rotated object coordinates (pixels).


def _soft_wave(phase: np.ndarray, period_px: float) -> np.ndarray:
    """Antialiased square wave of sin(phase) whose edges are about one pixel wide."""
    return np.clip(0.5 + np.sin(phase) * period_px / (2 * math.pi), 0.0, 1.0)


def _texture(name: str, u: np.ndarray, v: np.ndarray, period: float, rng: np.random.Generator) -> np.ndarray:
    """Second-colour fraction of a texture; `period` in pixels, everything else drawn from rng."""
    size = u.shape[0]
    phase = rng.uniform(0, 2 * math.pi)
    if name == "solid":
        return np.zeros_like(u)
    if name == "stripes":
        return _soft_wave(2 * math.pi * u / period + phase, period)
    if name == "checkerboard":
        cell = period * 0.75
        s = np.sin(math.pi * u / cell + phase) * np.sin(math.pi * v / cell + phase)
        return np.clip(0.5 + s * cell / math.pi, 0.0, 1.0)
    if name == "dots":
        row = np.floor(v / period)
        cu = np.mod(u / period + 0.5 * row + phase, 1.0) - 0.5
        cv = np.mod(v / period, 1.0) - 0.5
        return np.clip(0.5 + (0.3 - np.hypot(cu, cv)) * period, 0.0, 1.0)
    if name == "waves":
        wavelength = period * rng.uniform(2.5, 3.5)
        amplitude = period * rng.uniform(0.5, 0.7)
        bent = v + amplitude * np.sin(2 * math.pi * u / wavelength + rng.uniform(0, 2 * math.pi))
        return _soft_wave(2 * math.pi * bent / period + phase, period / 1.5)
    if name == "rings":
        rho = np.hypot(u - rng.uniform(-2, 2), v - rng.uniform(-2, 2))
        return _soft_wave(2 * math.pi * rho / period + phase, period)
    if name == "grid":
        width = max(1.5, 0.25 * period)
        du = np.abs(np.mod(u / period + phase, 1.0) - 0.5) * period  # distance to a cell centre
        dv = np.abs(np.mod(v / period + phase, 1.0) - 0.5) * period
        line = np.maximum(du, dv) - (period - width) / 2
        return np.clip(0.5 + line, 0.0, 1.0)
    if name == "spokes":
        count = int(rng.integers(6, 10))
        rho = np.maximum(np.hypot(u, v), 1.0)
        return np.clip(0.5 + np.sin(count * np.arctan2(v, u) + phase) * rho / count, 0.0, 1.0)
    if name == "blobs":
        cells = max(3, int(round(size / (1.6 * period))))
        noise = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
        smooth = _upsample(noise, size)
        smooth = (smooth - smooth.mean()) / (smooth.std() + 1e-6)
        return np.clip(0.5 + 2.5 * smooth, 0.0, 1.0)
    if name == "speckle":
        block = max(2, int(round(2 * size / 96)))
        cells = -(-size // block)
        bits = (rng.random((cells, cells)) < 0.5).astype(np.float64)
        return np.kron(bits, np.ones((block, block)))[:size, :size]
    raise KeyError(name)


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Smooth (bicubic) upsampling of a small grid to size x size."""
    import cv2  # local: keeps `import uss.data.toy` light

    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float64)


# ----------------------------------------------------------------------------------------------
# Classes, names, colours.


def class_spec(index: int) -> Tuple[str, str]:
    """(shape, texture) of class `index` (0-based); the first 10 classes use 10 shapes and 10 textures."""
    rounds, shape = divmod(index, len(SHAPES))
    return SHAPES[shape], TEXTURES[(shape + 3 * rounds) % len(TEXTURES)]


def wnid(index: int) -> str:
    """Fake 9-character ImageNet-style wnid of class `index` (0-based): n00000001, n00000002, ..."""
    return f"n{index + 1:08d}"


def _hsv(rng: np.random.Generator, sat: Tuple[float, float], val: Tuple[float, float]) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val)))


def class_hue(index: int, classes: int) -> float:
    """Base hue in [0, 1) of class `index` (0-based) under the natural palette: evenly spaced."""
    return (index + 0.5) / classes


def _natural_pair(rng: np.random.Generator, hue: float, classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """A class-typical colour (the class hue, jittered) and a second colour: a shade of it or any colour."""
    h = (hue + rng.uniform(-HUE_JITTER, HUE_JITTER) / classes) % 1.0
    sat, val = rng.uniform(0.45, 1.0), rng.uniform(0.45, 1.0)
    a = np.array(colorsys.hsv_to_rgb(h, sat, val))
    if rng.random() < SHADE_RATE:
        delta = rng.uniform(0.3, 0.45)
        shade = val - delta if val >= 0.72 else min(1.0, val + delta)  # darker when there is room, else lighter
        b = np.array(colorsys.hsv_to_rgb((h + rng.uniform(-0.03, 0.03)) % 1.0, rng.uniform(0.3, 1.0), shade))
    else:
        b = _hsv(rng, (0.3, 1.0), (0.35, 1.0))
    return a, b


def _object_colours(rng: np.random.Generator, background: np.ndarray, hue: Optional[float] = None,
                    classes: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Two texture colours away from the background: class-typical (`hue` given) or class-independent and
    exchangeable (the random palette)."""
    best, best_score = None, -1.0
    for _ in range(64):
        if hue is None:
            a = _hsv(rng, (0.3, 1.0), (0.35, 1.0))
            b = _hsv(rng, (0.3, 1.0), (0.35, 1.0))
        else:
            a, b = _natural_pair(rng, hue, classes)
        mutual = float(np.linalg.norm(a - b))
        to_bg = min(float(np.linalg.norm(a - background)), float(np.linalg.norm(b - background)))
        score = min(mutual / 0.4, to_bg / 0.25)
        if score >= 1.0:
            return a, b
        if score > best_score:
            best, best_score = (a, b), score
    return best


# ----------------------------------------------------------------------------------------------
# One image.


@lru_cache(maxsize=4)
def _pixel_grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    return xs, ys


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Cluttered background: gradient + smooth noise + low-contrast thin lines and small blobs."""
    xs, ys = _pixel_grid(size)
    c1 = _hsv(rng, (0.0, 0.6), (0.2, 0.9))
    c2 = _hsv(rng, (0.0, 0.6), (0.2, 0.9))
    angle = rng.uniform(0, 2 * math.pi)
    t = ((xs - size / 2) * math.cos(angle) + (ys - size / 2) * math.sin(angle)) / size + 0.5
    t = np.clip(t, 0.0, 1.0)[..., None]
    image = c1 * (1 - t) + c2 * t
    cells = int(rng.integers(3, 7))
    smooth = np.stack([_upsample(rng.standard_normal((cells, cells)).astype(np.float32), size) for _ in range(3)], -1)
    image = (image + 0.05 * smooth
             + 0.03 * _upsample(rng.standard_normal((cells, cells)).astype(np.float32), size)[..., None])
    for _ in range(int(rng.integers(3, 9))):
        delta = rng.uniform(0.05, 0.12) * rng.choice([-1.0, 1.0]) + rng.uniform(-0.03, 0.03, 3)
        if rng.random() < 0.6:  # thin line segment
            x0, y0 = rng.uniform(0, size, 2)
            length = rng.uniform(0.15, 0.45) * size
            direction = rng.uniform(0, 2 * math.pi)
            x1, y1 = x0 + length * math.cos(direction), y0 + length * math.sin(direction)
            ex, ey = x1 - x0, y1 - y0
            along = np.clip(((xs - x0) * ex + (ys - y0) * ey) / (ex * ex + ey * ey), 0.0, 1.0)
            dist = np.hypot(xs - (x0 + along * ex), ys - (y0 + along * ey))
            weight = np.clip(1.0 - dist / rng.uniform(0.6, 1.0), 0.0, 1.0)
        else:  # small soft blob
            cx, cy = rng.uniform(0, size, 2)
            radius = rng.uniform(1.5, 3.5) * size / 96
            weight = np.clip(radius - np.hypot(xs - cx, ys - cy) + 0.5, 0.0, 1.0)
        image = image + weight[..., None] * delta
    return image


def _placement(rng: np.random.Generator, shape: str, area_fraction: float, size: int) -> Dict:
    area, radius = _shape_geometry(shape)
    scale = math.sqrt(area_fraction * size * size / area)
    margin = 0.7 * scale * radius
    lo, hi = min(margin, size / 2), max(size - margin, size / 2)
    return {"shape": shape, "scale": scale, "cx": rng.uniform(lo, hi), "cy": rng.uniform(lo, hi),
            "angle": rng.uniform(0, 2 * math.pi)}


def _local(obj: Dict, size: int) -> Tuple[np.ndarray, np.ndarray]:
    xs, ys = _pixel_grid(size)
    dx, dy = xs - obj["cx"], ys - obj["cy"]
    c, s = math.cos(obj["angle"]), math.sin(obj["angle"])
    return c * dx + s * dy, -s * dx + c * dy


def _signed_distance(obj: Dict, size: int) -> np.ndarray:
    """Signed distance to the object's outline in pixels (negative inside)."""
    u, v = _local(obj, size)
    return SHAPE_SDF[obj["shape"]](u / obj["scale"], v / obj["scale"]) * obj["scale"]


def _sqrt_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """An area fraction whose square root (the linear size) is uniform on [sqrt(lo), sqrt(hi)]."""
    return rng.uniform(math.sqrt(lo), math.sqrt(max(lo, hi))) ** 2


def render_image(rng: np.random.Generator, main_class: int, classes: int, size: int,
                 palette: str = "natural") -> Tuple[np.ndarray, np.ndarray, List[int]]:
    """One image (HxWx3 uint8), its label map (HxW int32; 1000 on object borders) and its class ids."""
    natural = palette == "natural"
    smallest = NATURAL_MIN_AREA if natural else MIN_AREA
    image = _background(rng, size)
    class_ids = [main_class]
    if classes > 1 and rng.random() < TWO_OBJECT_RATE:
        other = int(rng.integers(0, classes - 1))
        class_ids.append(other + (other >= main_class))
        first = _sqrt_uniform(rng, smallest, 0.40)
        areas = [first, _sqrt_uniform(rng, smallest, min(first, 0.30))]
    else:
        areas = [_sqrt_uniform(rng, smallest, MAX_AREA)]
    shapes = [class_spec(k)[0] for k in class_ids]
    order = list(range(len(class_ids)))
    if len(order) == 2 and rng.random() < 0.5:
        order.reverse()  # the main object is drawn on top half of the time
    # Place objects; with two, retry until each keeps most of its area visible.
    best, best_score = None, -1.0
    for _ in range(30 if len(order) > 1 else 1):
        objs = [_placement(rng, shape, area, size) for shape, area in zip(shapes, areas)]
        sdfs = [_signed_distance(obj, size) for obj in objs]
        if len(order) == 1:
            best = (objs, sdfs)
            break
        bottom, top = order
        own = max(int((sdfs[bottom] < 0).sum()), 1)
        visible = int(((sdfs[bottom] < 0) & ~(sdfs[top] < 0)).sum()) / own
        if visible >= 0.6:
            best = (objs, sdfs)
            break
        if visible > best_score:
            best, best_score = (objs, sdfs), visible
    objs, sdfs = best
    label = np.zeros((size, size), dtype=np.int32)
    background_mean = image.reshape(-1, 3).mean(axis=0)
    for index in order:
        obj, sdf = objs[index], sdfs[index]
        texture = class_spec(class_ids[index])[1]
        hue = class_hue(class_ids[index], classes) if natural else None
        colour_a, colour_b = _object_colours(rng, background_mean, hue, classes)
        period = max(4.0, rng.uniform(5.5, 9.0) * size / 96)
        u, v = _local(obj, size)
        mix = _texture(texture, u, v, period, rng)[..., None]
        reach = obj["scale"] * _shape_geometry(obj["shape"])[1]
        light = rng.uniform(0, 2 * math.pi)
        shading = 1.0 + 0.15 * (u * math.cos(light) + v * math.sin(light)) / reach
        colour = (colour_a * (1 - mix) + colour_b * mix) * (shading[..., None] * rng.uniform(0.8, 1.1))
        alpha = np.clip(0.5 - sdf, 0.0, 1.0)[..., None]
        image = image * (1 - alpha) + colour * alpha
        label[sdf < 0] = class_ids[index] + 1
    image = image * rng.uniform(0.9, 1.1) + rng.normal(0.0, 0.015, image.shape)
    pixels = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    # Ignore band: every pixel with a differently-labelled 8-neighbour (one pixel each side of a border).
    padded = np.pad(label, 1, mode="edge")
    views = [padded[1 + dy:1 + dy + size, 1 + dx:1 + dx + size] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    border = np.max(views, axis=0) != np.min(views, axis=0)
    label[border] = IGNORE
    return pixels, label, [k + 1 for k in class_ids]


def _jpeg_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------
# The dataset.


def _parameters(seed: int, classes: int, size: int, train_per_class: int, val_per_class: int, test_per_class: int,
                palette: str) -> Dict:
    return {"generator": GENERATOR, "version": VERSION, "seed": seed, "classes": classes, "size": size,
            "train_per_class": train_per_class, "val_per_class": val_per_class, "test_per_class": test_per_class,
            "palette": palette}


def _check_parameters(params: Dict) -> None:
    for key in ("seed", "classes", "size", "train_per_class", "val_per_class", "test_per_class"):
        if not isinstance(params[key], (int, np.integer)) or isinstance(params[key], bool):
            raise ToyDatasetError(f"{key} must be an integer, got {params[key]!r}")
    if params["palette"] not in PALETTES:
        raise ToyDatasetError(f"palette must be one of {', '.join(PALETTES)}, got {params['palette']!r}")
    if params["seed"] < 0:
        raise ToyDatasetError(f"seed must be >= 0, got {params['seed']}")
    if not 1 <= params["classes"] <= MAX_CLASSES:
        raise ToyDatasetError(f"classes must lie in [1, {MAX_CLASSES}], got {params['classes']}")
    if not 32 <= params["size"] <= 1024:
        raise ToyDatasetError(f"size must lie in [32, 1024] pixels, got {params['size']}")
    for key in ("train_per_class", "val_per_class", "test_per_class"):
        if not 1 <= params[key] <= 99999:
            raise ToyDatasetError(f"{key} must lie in [1, 99999], got {params[key]}")


def _plan(params: Dict) -> List[Tuple[str, int, int, str]]:
    """Every image as (split, class index, index in class, relative path), in writing order."""
    plan = []
    categories = [wnid(k) for k in range(params["classes"])]
    counts = {"train": params["train_per_class"], "validation": params["val_per_class"],
              "test": params["test_per_class"]}
    first_number = 1
    for split in SPLITS:
        per_class = counts[split]
        if split == "train":
            numbers = None
        else:  # ImageNet-style val numbers, shuffled across classes; test follows validation
            total = per_class * len(categories)
            order = np.random.default_rng([params["seed"], SPLIT_CODES[split], 0]).permutation(total)
            numbers = first_number + order
            first_number += total
        for k, category in enumerate(categories):
            for j in range(per_class):
                if numbers is None:
                    name = f"{category}_{j + 1:08d}.JPEG"
                else:
                    name = f"ILSVRC2012_val_{int(numbers[k * per_class + j]):08d}.JPEG"
                plan.append((split, k, j, f"{category}/{name}"))
    return plan


def _is_complete(out: str, summary: Dict) -> bool:
    """True when every file named by the summary's name lists is present."""
    for split in SPLITS:
        listed = os.path.join(out, "names", f"{split}.txt")
        if not os.path.isfile(listed):
            return False
        with open(listed) as handle:
            names = [line.strip() for line in handle if line.strip()]
        if len(names) != summary.get("images", {}).get(split):
            return False
        for name in names:
            if not os.path.isfile(os.path.join(image_dir(out, split), name)):
                return False
            if split in SEGMENTED_SPLITS and not os.path.isfile(
                    os.path.join(segmentation_dir(out, split), label_name(name))):
                return False
    return os.path.isfile(os.path.join(out, "categories.txt"))


def _read_summary(out: str) -> Optional[Dict]:
    try:
        with open(os.path.join(out, SUMMARY_FILE)) as handle:
            summary = json.load(handle)
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and summary.get("generator") == GENERATOR else None


def _clear_previous(out: str) -> None:
    """Remove what an earlier toy generation wrote (only the toy dataset's own entries)."""
    for entry in ("train", "validation", "validation-segmentation", "test", "test-segmentation", "names"):
        path = os.path.join(out, entry)
        if os.path.isdir(path):
            shutil.rmtree(path)
    for entry in ("categories.txt",):
        path = os.path.join(out, entry)
        if os.path.isfile(path):
            os.unlink(path)


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def _check_oracle_dir(out: str, oracle_dir: str) -> None:
    if _inside(oracle_dir, out) or _inside(out, oracle_dir):
        raise ToyDatasetError(f"the oracle mask folder {oracle_dir} must lie outside the dataset {out} (and not "
                              f"contain it): unsupervised stages must never be able to read it")


def write_oracle_masks(out: str, oracle_dir: str, summary: Dict, *, progress: bool = True) -> int:
    """Write the true label PNG of every train image of the dataset at `out` to `oracle_dir`/<wnid>/<name>.png.

    The folder lies outside the dataset, so no unsupervised stage (all of which read only `--data`) can see
    it; only the demo's ceiling rows pass it on, as `--pseudo-labels`. The masks are re-rendered from the
    generator's own per-image seeds (the same pixels as the JPEGs); existing files are kept. Returns the
    number written."""
    _check_oracle_dir(out, oracle_dir)
    written = 0
    todo = [item for item in _plan(summary) if item[0] == "train"
            and not os.path.isfile(os.path.join(oracle_dir, label_name(item[3])))]
    for split, k, j, relative in tqdm(todo, desc="toy oracle train masks", unit="img", disable=not progress):
        rng = np.random.default_rng([summary["seed"], SPLIT_CODES[split], k, j])
        _, label, _ = render_image(rng, k, summary["classes"], summary["size"], summary.get("palette", "random"))
        write_label_png(os.path.join(oracle_dir, label_name(relative)), label)
        written += 1
    return written


def generate(out: str, seed: int = 0, classes: int = 10, size: int = DEFAULT_SIZE,
             train_per_class: int = DEFAULT_TRAIN_PER_CLASS, val_per_class: int = 8, test_per_class: int = 8, *,
             palette: str = "natural", oracle_masks: Optional[str] = None, progress: bool = True) -> Dict:
    """Write the toy ImageNet-S dataset under `out` (reused when already complete) and return its summary;
    with `oracle_masks`, also the true train masks there (see `write_oracle_masks`)."""
    if oracle_masks:
        _check_oracle_dir(out, oracle_masks)
    summary = _generate(out, seed, classes, size, train_per_class, val_per_class, test_per_class, palette, progress,
                        oracle_masks)
    if oracle_masks:  # a reused dataset: only the masks still missing are rendered
        written = write_oracle_masks(out, oracle_masks, summary, progress=progress)
        print(f"toy dataset: true train masks in {oracle_masks} ({written} re-rendered; for the ceiling rows only, "
              f"outside {out})")
    return summary


def _generate(out: str, seed: int, classes: int, size: int, train_per_class: int, val_per_class: int,
              test_per_class: int, palette: str, progress: bool, oracle_dir: Optional[str] = None) -> Dict:
    params = _parameters(seed, classes, size, train_per_class, val_per_class, test_per_class, palette)
    _check_parameters(params)
    params = {key: int(value) if isinstance(value, np.integer) else value for key, value in params.items()}
    if os.path.exists(out) and not os.path.isdir(out):
        raise ToyDatasetError(f"cannot write the toy dataset to {out}: it exists and is not a folder")
    if os.path.isdir(out) and os.listdir(out):
        previous = _read_summary(out)
        if previous is None and not os.path.exists(os.path.join(out, PARTIAL_MARKER)):
            raise ToyDatasetError(f"refusing to write the toy dataset into {out}: the folder is not empty and holds "
                                  f"no toy dataset ({SUMMARY_FILE} missing); pass an empty or new folder")
        if (previous is not None and all(previous.get(k) == v for k, v in params.items())
                and _is_complete(out, previous)):
            print(f"toy dataset at {out} is complete with the same parameters; reusing it")
            return previous
        # An earlier toy dataset (other parameters, or interrupted): rebuild it in place.
        if os.path.exists(os.path.join(out, SUMMARY_FILE)):
            os.unlink(os.path.join(out, SUMMARY_FILE))
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, PARTIAL_MARKER), "toy dataset generation in progress\n")
    _clear_previous(out)
    start = time.time()

    categories = [wnid(k) for k in range(classes)]
    atomic_write_text(os.path.join(out, "categories.txt"), "".join(c + "\n" for c in categories))
    plan = _plan(params)
    names: Dict[str, List[str]] = {split: [] for split in SPLITS}
    two_objects = {split: 0 for split in SPLITS}
    for split, k, j, relative in tqdm(plan, desc="toy dataset", unit="img", disable=not progress):
        rng = np.random.default_rng([seed, SPLIT_CODES[split], k, j])
        pixels, label, ids = render_image(rng, k, classes, size, palette)
        atomic_write_bytes(os.path.join(image_dir(out, split), relative), _jpeg_bytes(pixels))
        if split in SEGMENTED_SPLITS:
            write_label_png(os.path.join(segmentation_dir(out, split), label_name(relative)), label)
        elif oracle_dir:  # the true train mask, from the same render, outside the dataset
            write_label_png(os.path.join(oracle_dir, label_name(relative)), label)
        names[split].append(relative)
        two_objects[split] += len(ids) > 1
    for split in SPLITS:
        atomic_write_text(os.path.join(out, "names", f"{split}.txt"), "".join(n + "\n" for n in sorted(names[split])))

    summary = dict(params)
    summary.update({
        "categories": categories,
        "class_descriptions": {c: "{} with {} texture".format(*class_spec(k)) + (
            f", hue {class_hue(k, classes):.3f}" if palette == "natural" else "") for k, c in enumerate(categories)},
        "images": {split: len(names[split]) for split in SPLITS},
        "two_object_images": two_objects,
        "label_ids": {"background": BACKGROUND, "classes": [1, classes], "ignore": IGNORE},
    })
    atomic_write_json(os.path.join(out, SUMMARY_FILE), summary)
    os.unlink(os.path.join(out, PARTIAL_MARKER))
    total = sum(summary["images"].values())
    print(f"toy dataset: wrote {total} images ({summary['images']['train']} train, {summary['images']['validation']} "
          f"validation, {summary['images']['test']} test; {classes} classes, {size}x{size}) to {out} "
          f"in {time.time() - start:.1f}s")
    return summary


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command line: python -m uss.data.toy --out data/toy [--seed 0] [--classes 10] [--size 96] ..."""
    parser = argparse.ArgumentParser(prog="python -m uss.data.toy", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (new, empty, or an earlier toy dataset)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", type=int, default=10, help=f"number of classes, 1..{MAX_CLASSES}")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="image side in pixels")
    parser.add_argument("--train-per-class", type=int, default=DEFAULT_TRAIN_PER_CLASS)
    parser.add_argument("--val-per-class", type=int, default=8)
    parser.add_argument("--test-per-class", type=int, default=8)
    parser.add_argument("--palette", choices=PALETTES, default="natural",
                        help="natural: each class has a typical colour (the demo); random: colour independent of the "
                             "class (the first version's data)")
    parser.add_argument("--oracle-masks", default=None, metavar="DIR",
                        help="also write the true train masks to DIR, outside --out (for ceiling rows only)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    generate(args.out, seed=args.seed, classes=args.classes, size=args.size, train_per_class=args.train_per_class,
             val_per_class=args.val_per_class, test_per_class=args.test_per_class, palette=args.palette,
             oracle_masks=args.oracle_masks,
             progress=not args.no_progress)


if __name__ == "__main__":
    run_cli(main)
