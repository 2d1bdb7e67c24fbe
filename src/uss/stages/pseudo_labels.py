"""Per-pixel pseudo labels from the pixel-attention model and the k-means centroids (PASS).

For an image resized to --short-side: cosine similarity of every (x4-upsampled, L2-normalised)
pixel feature to every centroid, argmax + 1, nearest-upsampled to the image size; pixels whose
channel-mean attention (bilinearly upsampled) is below the background threshold become 0.

Two modes:
  sweep    on a split with ground truth (validation): evaluate the labels for a range of thresholds
           with the project's evaluator (Hungarian match per threshold), write threshold_curve.json,
           threshold_curve.png and threshold.json (the chosen threshold), which later stages read.
  generate one label PNG per image of a split (train), atomically and resumably, shardable across
           MPI ranks or with --shard i/n. The threshold is --threshold if given, else threshold.json.
"""
import argparse
import json
import os
import time
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from uss import distributed, options
from uss.atomic import atomic_write_json, remove_stale_temp_files
from uss.data import augment, layout
from uss.data.image_io import ImageFileError
from uss.data.label_png import is_complete_label_png, write_label_png
from uss.data.pseudo_labels import FINETUNE_MEAN, FINETUNE_STD
from uss.data.split import ImageNetSSplit
from uss.errors import InputError
from uss.evaluation.evaluator import match_from_stats
from uss.evaluation.metrics import MetricAccumulator, image_stats
from uss.plots import line_chart, save_png
from uss.training import runner

THRESHOLD_FILE = "threshold.json"
# Which side of the threshold is background. PASS: attention below it ("below"). The sweep also tries "above":
# the attention's polarity is learnt, not given, and on a weak backbone it comes out inverted (SwAV can match two
# crops of a toy image by its smooth, image-specific background more easily than by its object), which the
# validation ground truth that already picks the threshold reveals at no extra cost.
BELOW, ABOVE = "below", "above"
SIDES = (BELOW, ABOVE)
AUTO = "auto"  # --thresholds auto[:N]: quantiles of the attention instead of a fixed grid


def load_threshold(path: str) -> float:
    """The chosen background threshold stored by a sweep (a float in [0, 1], never truncated)."""
    try:
        with open(path) as handle:
            value = json.load(handle)["threshold"]
    except FileNotFoundError:
        raise InputError(f"{path}: threshold file not found; run the sweep first (train_2.sh) or pass --threshold")
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a threshold file ({error})") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise InputError(f"{path}: threshold must be a number in [0, 1], got {value!r}")
    return float(value)


def load_background_side(path: str) -> str:
    """The side of the threshold a sweep found to be background ('below' for files written before it was swept)."""
    with open(path) as handle:
        side = json.load(handle).get("background", BELOW)
    if side not in SIDES:
        raise InputError(f"{path}: 'background' must be one of {SIDES}, got {side!r}")
    return side


def resolve_threshold(explicit: Optional[float], threshold_file: str,
                      explicit_side: Optional[str] = None) -> Tuple[float, str, str]:
    """(threshold, background side, where they came from): explicit values win over the sweep's file."""
    if explicit is not None:
        return float(explicit), explicit_side or BELOW, "--threshold"
    threshold = load_threshold(threshold_file)
    return threshold, explicit_side or load_background_side(threshold_file), threshold_file


def load_centroids(path: str) -> np.ndarray:
    try:
        centroids = np.load(path)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read centroids ({error})") from None
    if centroids.ndim != 2:
        raise InputError(f"{path}: centroids must be a K x C matrix, got shape {centroids.shape}")
    return centroids.astype(np.float32)


class PixelLabeler:
    """Class map (1..K) and channel-mean attention at the image's size, for any threshold."""

    def __init__(self, model, centroids: np.ndarray, short_side: int = 256):
        import jittor as jt

        self.model = model
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        self.centroids = jt.array(centroids / np.maximum(norms, 1e-12))
        self.short_side = short_side
        channels = model.backbone.out_channels[-1]
        if centroids.shape[1] != channels:
            raise InputError(f"centroids have {centroids.shape[1]} channels but the model has {channels}: "
                             f"were they computed with this checkpoint?")

    def features(self, image: np.ndarray):
        """(L2-normalised features C x h x w, channel-mean attention h x w) as jittor Vars, at the model's
        x4-upsampled resolution of the image resized to the short side."""
        import jittor as jt

        # PASS inference_pixel_attention.py: Resize(256) (PIL bilinear), torchvision normalisation (std 0.229).
        view = augment.resize_short_side(image, self.short_side)
        x = jt.array(augment.normalize(view, FINETUNE_MEAN, FINETUNE_STD)[None])
        with jt.no_grad():
            feats, attention = self.model.attention_map(x)
        return feats[0], attention[0, 0]

    def classify(self, vectors):
        """Centroid id + 1 (1..K) of each row of an N x C jittor Var, by cosine similarity."""
        import jittor as jt

        vectors = jt.normalize(vectors, p=2, dim=1)
        return jt.argmax(jt.matmul(vectors, self.centroids.transpose(1, 0)), dim=1)[0] + 1

    def __call__(self, image: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(class ids HxW int32 in 1..K, attention HxW float32) for an RGB uint8 image."""
        import jittor as jt

        height, width = image.shape[:2]
        with jt.no_grad():
            feats, attention = self.features(image)
            channels, h, w = feats.shape
            classes = self.classify(feats.reshape(channels, h * w).transpose(1, 0))
            classes = classes.reshape(h, w).numpy().astype(np.int32)
            attention = attention.numpy().astype(np.float32)
        classes = cv2.resize(classes, (width, height), interpolation=cv2.INTER_NEAREST)
        attention = cv2.resize(attention, (width, height), interpolation=cv2.INTER_LINEAR)
        return classes, attention


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
          out_dir: str, label_source: str = "per-pixel", sides: Sequence[str] = SIDES) -> Dict[str, object]:
    """Evaluate thresholded labels on a split with ground truth, for every threshold and background side; write
    the curves and the chosen (threshold, side). `prepare(image)` does the expensive work once per image and
    returns `label_at(threshold, side) -> HxW ids`."""
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
              "split": split.split, "labels": label_source, "images": len(split)}
    atomic_write_json(os.path.join(out_dir, THRESHOLD_FILE), chosen)
    return chosen


def generate(label_fn, split: ImageNetSSplit, out_dir: str, desc: str) -> Dict[str, int]:
    """Write one label PNG per image of `split` (already sharded) with label_fn(image, index) -> HxW ids.
    Finished files (decodable, right size) are skipped; anything else is (re)written atomically."""
    from uss.data.image_io import image_size

    counts = {"written": 0, "skipped": 0, "failed": 0}
    failures = []
    if distributed.world_size() == 1:  # with several ranks, another rank's write may be in flight
        remove_stale_temp_files(out_dir)
    start = time.time()
    bar = tqdm(range(len(split)), desc=desc, unit="img", disable=not distributed.is_main_process())
    for index in bar:
        name = split.names[index]
        target = os.path.join(out_dir, layout.label_name(name))
        try:
            if is_complete_label_png(target, image_size(split.image_path(name))):
                counts["skipped"] += 1
                continue
            item = split.load(index)
        except ImageFileError as error:
            counts["failed"] += 1
            failures.append(str(error))
            continue
        write_label_png(target, label_fn(item.image, index))
        counts["written"] += 1
        bar.set_postfix(img_s=f"{counts['written'] / (time.time() - start):.1f}")
    for message in failures:
        runner.warn(f"{desc}: could not label {message}")
    return counts


def shard_of(split: ImageNetSSplit, shard: Optional[str]) -> ImageNetSSplit:
    """This process's part: --shard i/n, else the MPI rank's, else everything."""
    if shard:
        try:
            index, count = (int(v) for v in shard.split("/"))
        except ValueError:
            raise InputError(f"--shard must look like i/n (e.g. 0/4), got {shard!r}") from None
        return split.shard(index, count)
    return split.shard(distributed.rank(), distributed.world_size())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="PASS per-pixel pseudo labels: threshold sweep and generation.")

    def shared() -> List[argparse.ArgumentParser]:
        parent = argparse.ArgumentParser(add_help=False)
        parent.add_argument("--foreground", default="attention", choices=["attention", "oracle"],
                            help="generate: background from the thresholded attention (the method) or, for a ceiling "
                                 "on a split with ground truth, from the true masks")
        return [options.labelling(SIDES, "folder with centroids.npy (and threshold.json)", "background threshold",
                                  "<cluster-dir>/threshold.json"), parent]

    options.subcommands(parser, {
        "sweep": ("choose the background threshold on a split with ground truth -> threshold.json",
                  [*shared(), options.label_folder(False, "folder for threshold.json and the curve "
                                                          "(default: <cluster-dir>)")]),
        "generate": ("write one label PNG per image of a split", [*shared(), options.label_folder()])})
    return parser


def run(args: argparse.Namespace):
    from uss.stages.pixel_attention import load_pixel_attention_model

    runner.setup_device()
    split = ImageNetSSplit(args.data, args.split or ("validation" if args.mode == "sweep" else "train"))
    centroids = load_centroids(args.centroids or os.path.join(args.cluster_dir, "centroids.npy"))
    labeler = PixelLabeler(load_pixel_attention_model(args.pretrained), centroids, args.short_side)
    log = runner.StageLog(f"pseudo labels {args.mode}", args.cluster_dir)
    if args.mode == "sweep":
        thresholds = resolve_thresholds(args.thresholds, lambda image: labeler(image)[1], split)
        chosen = sweep(lambda image: partial(apply_threshold, *labeler(image)), split, thresholds,
                       len(centroids), args.out or args.cluster_dir)
        log.info(f"chosen threshold {chosen['threshold']:.3f}, background {chosen['background']} (validation mIoU "
                 f"{100 * chosen['mIoU']:.2f}) -> "
                 f"{os.path.join(args.out or args.cluster_dir, THRESHOLD_FILE)}")
        return chosen
    if not args.out:
        raise InputError("generate needs --out (the pseudo-label folder)")
    part = shard_of(split, args.shard)
    if args.foreground == "oracle":
        # A ceiling, not the method: the ground-truth foreground replaces the thresholded attention.
        if not split.has_segmentation:
            raise InputError(f"--foreground oracle needs ground truth: {split.segmentation_dir} not found")
        log.info(f"labelling {len(split)} images of {split.image_dir} inside their TRUE foreground (ceiling)")
        counts = generate(lambda image, index: oracle_foreground_labels(labeler(image)[0], part.load_label(index)),
                          part, args.out, f"pseudo labels ({split.split}, true foreground)")
    else:
        threshold, side, source = resolve_threshold(args.threshold, os.path.join(args.cluster_dir, THRESHOLD_FILE),
                                                    args.background)
        log.info(f"labelling {len(split)} images of {split.image_dir} with threshold {threshold:.3f}, background "
                 f"{side} (from {source})")
        counts = generate(lambda image, index: apply_threshold(*labeler(image), threshold, side), part, args.out,
                          f"pseudo labels ({split.split})")
    log.info(f"{counts['written']} written, {counts['skipped']} already done, {counts['failed']} failed -> {args.out}")
    return counts


def main(argv: Optional[List[str]] = None) -> None:
    run(build_parser().parse_args(argv))
