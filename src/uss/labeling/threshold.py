"""Background thresholds of pseudo labels: choosing one by a sweep on validation ground truth, storing it,
reading it back, applying it.

`sweep` evaluates thresholded labels with the project's evaluator (Hungarian match per threshold and side) and
writes threshold_curve.json, threshold_curve.png and threshold.json (the chosen threshold and background side),
which later stages read with `resolve_threshold`. The value is stored and read as a float, never truncated.

A threshold applies to the attention read one of two ways, stored with it as "attention": as the model gives it
(`RAW`, PASS's and the sweep's) or standardised within each image (`PER_IMAGE`: minus the image's mean, over its
standard deviation), which the label-free threshold uses (`uss.labeling.label_free`).
"""
import json
import math
import os
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np
from tqdm import tqdm

from uss.atomic import atomic_write_json
from uss.data.split import ImageNetSSplit
from uss.errors import InputError
from uss.evaluation.evaluator import match_from_stats
from uss.evaluation.metrics import MetricAccumulator, image_stats
from uss.plots import line_chart, save_png

THRESHOLD_FILE = "threshold.json"
# Which side of the threshold is background. PASS: attention below it ("below"). The sweep also tries "above":
# the attention's polarity is learnt, not given, and on a weak backbone it comes out inverted (SwAV can match two
# crops of a toy image by its smooth, image-specific background more easily than by its object), which the
# validation ground truth that already picks the threshold reveals at no extra cost.
BELOW, ABOVE = "below", "above"
SIDES = (BELOW, ABOVE)
AUTO = "auto"  # --thresholds auto[:N]: quantiles of the attention instead of a fixed grid
RAW, PER_IMAGE = "raw", "standardised per image"  # how the attention is read before it meets the threshold
SCALES = (RAW, PER_IMAGE)


def scale_attention(attention: np.ndarray, scale: str = RAW) -> np.ndarray:
    """The attention as a threshold of this scale reads it: unchanged (`RAW`), or minus the map's mean over its
    standard deviation (`PER_IMAGE`; a constant map becomes all zeros)."""
    if scale == RAW:
        return attention
    if scale != PER_IMAGE:
        raise ValueError(f"attention scale must be one of {SCALES}, got {scale!r}")
    # In float64: a barely trained attention spreads over a few thousandths around 0.5, below float32's resolution
    # of its mean's last digits.
    attention = np.asarray(attention, np.float64)
    return ((attention - attention.mean()) / max(float(attention.std()), 1e-12)).astype(np.float32)


def _read_threshold_file(path: str) -> dict:
    try:
        with open(path) as handle:
            chosen = json.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: threshold file not found; run the sweep first (train_2.sh) or pass --threshold")
    except ValueError as error:
        raise InputError(f"{path}: not a threshold file ({error})") from None
    if not isinstance(chosen, dict) or "threshold" not in chosen:
        raise InputError(f"{path}: not a threshold file (no 'threshold' entry)")
    return chosen


def _scale_of(chosen: dict, path: str) -> str:
    scale = chosen.get("attention", RAW)
    if scale not in SCALES:
        raise InputError(f"{path}: 'attention' must be one of {SCALES}, got {scale!r}")
    return scale


def _value_of(chosen: dict, path: str) -> float:
    value, raw = chosen["threshold"], _scale_of(chosen, path) == RAW
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (raw and not 0.0 <= float(value) <= 1.0):
        raise InputError(f"{path}: threshold must be a number{' in [0, 1]' if raw else ''}, got {value!r}")
    return float(value)


def _side_of(chosen: dict, path: str) -> str:
    side = chosen.get("background", BELOW)
    if side not in SIDES:
        raise InputError(f"{path}: 'background' must be one of {SIDES}, got {side!r}")
    return side


def load_attention_scale(path: str) -> str:
    """How the threshold in this file reads the attention (`RAW` for files written before scales existed)."""
    return _scale_of(_read_threshold_file(path), path)


def load_threshold(path: str) -> float:
    """The chosen background threshold stored by a sweep (a float, never truncated: in [0, 1] for the raw attention,
    any finite number for the per-image standardised one)."""
    return _value_of(_read_threshold_file(path), path)


def load_background_side(path: str) -> str:
    """The side of the threshold a sweep found to be background ('below' for files written before it was swept)."""
    return _side_of(_read_threshold_file(path), path)


class Threshold(NamedTuple):
    """A background threshold as a stage applies it, and where it came from."""
    value: float
    side: str
    scale: str
    source: str

    def describe(self) -> str:
        scale = "" if self.scale == RAW else f" of the attention {self.scale}"
        return f"threshold {self.value:.3f}{scale}, background {self.side} (from {self.source})"


def resolve_threshold(explicit: Optional[float], threshold_file: str,
                      explicit_side: Optional[str] = None) -> Threshold:
    """The threshold to apply: an explicit --threshold (on the raw attention) wins over the file's."""
    if explicit is not None:
        return Threshold(float(explicit), explicit_side or BELOW, RAW, "--threshold")
    chosen = _read_threshold_file(threshold_file)
    return Threshold(_value_of(chosen, threshold_file), explicit_side or _side_of(chosen, threshold_file),
                     _scale_of(chosen, threshold_file), threshold_file)


def describe_choice(path: str) -> str:
    """One line for a threshold.json: the threshold, its side, and how it was chosen (with the sweep's mIoU)."""
    with open(path) as handle:
        chosen = json.load(handle)
    how = (f"{chosen['split']} mIoU {100 * chosen['mIoU']:.2f}" if chosen.get("mIoU") is not None
           else f"{chosen.get('method', 'given')}, on {chosen.get('split', '?')}")
    scale = "" if chosen.get("attention", RAW) == RAW else f" ({chosen['attention']})"
    return (f"{chosen.get('labels', '?'):>22}: threshold {chosen['threshold']:.3f}{scale}, background "
            f"{chosen.get('background', BELOW)} ({how})")


def is_background(attention: np.ndarray, threshold: float, side: str = BELOW) -> np.ndarray:
    """Where the attention marks background: below the threshold (PASS), or above it for an inverted attention."""
    if side not in SIDES:
        raise ValueError(f"background side must be one of {SIDES}, got {side!r}")
    return attention < threshold if side == BELOW else attention > threshold


def apply_threshold(classes: np.ndarray, attention: np.ndarray, threshold: float, side: str = BELOW) -> np.ndarray:
    """Background (0) where the attention is below the threshold (or above it, side='above')."""
    return np.where(is_background(attention, threshold, side), 0, classes).astype(np.int32)


def oracle_foreground_labels(classes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Cluster ids inside the ground-truth foreground (ids 1..K, ignore pixels counted as foreground), 0 elsewhere."""
    return np.where(truth > 0, classes, 0).astype(np.int32)


def parse_range(text: str) -> List[float]:
    """'0:0.9:0.025' -> [0, 0.025, ..., 0.9]; or a comma list '0.2,0.3'. ('auto[:N]' is resolved by
    `resolve_thresholds`.)"""
    if text.startswith(AUTO):
        raise InputError(f"--thresholds {text}: 'auto' needs the attention of the split (use resolve_thresholds)")
    if ":" in text:
        low, high, step = (float(v) for v in text.split(":"))
        return [round(v, 6) for v in np.arange(low, high + step / 2, step)]
    return [float(v) for v in text.split(",")]


def attention_quantiles(attention_of, split: ImageNetSSplit, count: int = 101, max_images: int = 200) -> List[float]:
    """`count` thresholds at evenly spaced quantiles (0 % .. 100 %) of the attention over (up to `max_images`,
    evenly spread) images of the split, duplicates dropped. Unlike a fixed grid this always spans the values the
    attention takes, however narrow (a barely trained attention lives within a few hundredths of 0.5)."""
    if count < 2:
        raise InputError(f"--thresholds auto:N needs N >= 2, got {count}")
    picks = np.unique(np.linspace(0, len(split) - 1, min(max_images, len(split))).round().astype(int))
    values = np.concatenate([np.asarray(attention_of(split.load(int(i)).image), np.float32).ravel()
                             for i in tqdm(picks, desc=f"attention quantiles on {split.split}", unit="img")])
    return sorted({round(float(q), 6) for q in np.quantile(values, np.linspace(0.0, 1.0, count))})


def resolve_thresholds(text: str, attention_of, split: ImageNetSSplit) -> List[float]:
    """--thresholds: 'auto' / 'auto:N' (attention quantiles of the split, N = 101 by default) or `parse_range`."""
    if text == AUTO or text.startswith(AUTO + ":"):
        count = text[len(AUTO) + 1:]
        try:
            return attention_quantiles(attention_of, split, int(count) if count else 101)
        except ValueError:
            raise InputError(f"--thresholds must be auto or auto:N with an integer N, got {text!r}") from None
    return parse_range(text)


def sweep(prepare, split: ImageNetSSplit, thresholds: Sequence[float], num_classes: int,
          out_dir: str, label_source: str = "per-pixel", sides: Sequence[str] = SIDES,
          attention_scale: str = RAW) -> Dict[str, object]:
    """Evaluate thresholded labels on a split with ground truth, for every threshold and background side; write
    the curves and the chosen (threshold, side). `prepare(image)` does the expensive work once per image and
    returns `label_at(threshold, side) -> HxW ids`; `attention_scale` is the scale its attention is read in."""
    if not split.has_segmentation:
        raise InputError(f"the sweep needs ground truth: {split.segmentation_dir} not found")
    settings = [(threshold, side) for side in sides for threshold in thresholds]
    stats: List[list] = [[] for _ in settings]
    start = time.time()
    bar = tqdm(range(len(split)), desc=f"sweep ({label_source}) on {split.split}", unit="img")
    for index in bar:
        label_at = prepare(split.load(index).image)
        gt = split.load_label(index)
        for slot, (threshold, side) in enumerate(settings):
            stats[slot].append(image_stats(gt, label_at(threshold, side)))
        bar.set_postfix(img_s=f"{(index + 1) / (time.time() - start):.1f}")
    curve = []
    for (threshold, side), per_image in zip(settings, stats):
        match = match_from_stats(per_image, num_classes)
        accumulator = MetricAccumulator(num_classes)
        for s in per_image:
            accumulator.add(s, match)
        result = accumulator.result()
        curve.append({"threshold": threshold, "background": side, "mIoU": result["mIoU"],
                      "FMeasure": result["FMeasure"], "Acc": result["Acc"]})
    best = max(curve, key=lambda point: point["mIoU"])  # ties: the first, so PASS's side and the lower threshold
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_json(os.path.join(out_dir, "threshold_curve.json"),
                      {"split": split.split, "labels": label_source, "curve": curve})
    series = {}
    for side in sides:
        points = [p for p in curve if p["background"] == side]
        series[f"mIoU, background {side}"] = [p["mIoU"] for p in points]
        series[f"F-measure, background {side}"] = [p["FMeasure"] for p in points]
    chart = line_chart(list(thresholds), series,
                       f"{label_source} labels, {split.split}: best {best['threshold']:.3f}, background "
                       f"{best['background']} (mIoU {100 * best['mIoU']:.1f})", "background threshold", "score",
                       best["threshold"])
    save_png(os.path.join(out_dir, "threshold_curve.png"), chart)
    chosen = {"threshold": float(best["threshold"]), "background": best["background"], "mIoU": best["mIoU"],
              "attention": attention_scale, "method": "ground-truth sweep", "split": split.split,
              "labels": label_source, "images": len(split)}
    atomic_write_json(os.path.join(out_dir, THRESHOLD_FILE), chosen)
    return chosen


if __name__ == "__main__":  # python -m uss.labeling.threshold FILE...: one line per threshold.json
    import sys

    for name in sys.argv[1:]:
        print(describe_choice(name))
