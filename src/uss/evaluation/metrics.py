"""ImageNet-S segmentation metrics in pure numpy (+ OpenCV morphology), following LUSSeg/ImageNet-S.

Conventions (all as in the official ``evaluation/`` scripts unless noted):

* Classes are ``0..K``: 0 is background, ``1..K`` the categories. GT pixels labelled 1000 (IGNORE)
  are dropped before anything is counted, from the GT and from the prediction alike.
* Predicted ids are mapped to classes by a match (``{predicted id: class}``); ids absent from the
  match, and without a match ids outside ``0..K``, count as background 0.
* IoU_c = TP / (T + P - TP + 1e-10) from the dataset-wide confusion; mIoU is the mean over all
  K + 1 classes (background included; a class absent from GT and prediction contributes 0).
* Acc: per image, the predicted foreground class with the largest area (lowest id on ties) is
  correct when it is present in the GT (and predicted); an image without predicted foreground scores 0.
* F-measure: per image, foreground (> 0) vs background, beta^2 = 0.3, eps = 1e-20, averaged over
  images; an image whose GT has no foreground scores 0 (as official).
* Size-wise mIoU (S / MS / ML / L): a GT class covering ceil(100 * count / valid) percent of an
  image's valid pixels falls in the bucket <= 5, <= 25, <= 50, > 50; a bucket accumulates the
  confusion of the image's background pixels plus the pixels of its classes in that bucket, and its
  mIoU is the mean over classes with GT pixels in the bucket (``None`` when a bucket is empty).
* Boundary IoU (Cheng et al. 2021, boundary-iou-api ``mask_to_boundary``): the band of a class mask
  is the mask minus its erosion by a 3x3 square iterated d = max(1, round(0.03 * diagonal)) times on
  a zero-padded copy, so pixels within d of the image border are boundary too. Bands are computed on
  the full label maps (the ignore region is a label of its own, so its neighbours are boundary),
  then ignored pixels are dropped. As in the official loader, prediction bands are computed on the
  raw predicted ids and then mapped through the match. Per class, intersection and union of the GT
  and predicted bands are summed over the dataset; BIoU_c = inter / (union + 1e-10) and mBIoU is the
  mean over all K + 1 classes (a class with an empty union contributes 0, as in mIoU).
* Size-wise boundary IoU (BS / BMS / BML / BL): the same bands, counted over the pixels of each size
  bucket as for S / MS / ML / L (the image's background pixels plus those of its classes in the
  bucket); the mean is over classes with GT band pixels in the bucket (``None`` when there are none).

All returned scores are fractions in [0, 1], not percent.
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from uss.data.label_png import IGNORE

EPS_IOU = 1e-10
EPS_F = 1e-20
BETA2 = 0.3
BOUNDARY_RATIO = 0.03
SIZE_BUCKETS = ("S", "MS", "ML", "L")
BOUNDARY_SIZE_BUCKETS = ("BS", "BMS", "BML", "BL")
SIZE_LIMITS = (5, 25, 50)


# ----------------------------------------------------------------------------- basic pixel metrics

def map_to_classes(pred: np.ndarray, num_classes: int, match: Optional[Mapping[int, int]] = None) -> np.ndarray:
    """Predicted ids -> classes 0..K via `match` (missing ids -> 0); without a match ids outside 0..K -> 0."""
    pred = np.asarray(pred)
    ids, inverse = np.unique(pred, return_inverse=True)
    return _lookup(ids.astype(np.int64), num_classes, match)[inverse.ravel()].reshape(pred.shape)


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K+1)x(K+1) int64 pixel counts [gt, pred]; GT==1000 dropped, predictions outside 0..K counted as 0."""
    gt = np.asarray(gt, dtype=np.int64).ravel()
    pred = np.asarray(pred, dtype=np.int64).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"gt and prediction differ in size: {gt.shape} vs {pred.shape}")
    keep = gt != IGNORE
    gt, pred = gt[keep], pred[keep]
    if gt.size and (gt.min() < 0 or gt.max() > num_classes):
        raise ValueError(f"GT ids must lie in 0..{num_classes} or be {IGNORE}; got [{gt.min()}, {gt.max()}]")
    pred = np.where((pred >= 0) & (pred <= num_classes), pred, 0)
    n = num_classes + 1
    return np.bincount(gt * n + pred, minlength=n * n).reshape(n, n)


def iou_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Per-class IoU = TP / (GT + P - TP + 1e-10) from a [gt, pred] confusion matrix."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    return tp / (confusion.sum(1) + confusion.sum(0) - tp + EPS_IOU)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over all K+1 classes (background included), as the official evaluator."""
    return float(iou_from_confusion(confusion).mean())


def confusion_scores(confusion: np.ndarray) -> Dict[str, float]:
    """Training diagnostics of a [label, pred] confusion (fine-tuning's train crops), not the benchmark's scores:
    pixel accuracy, mIoU over only the classes present in labels or predictions, and the background share."""
    total = max(float(confusion.sum()), 1.0)
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    return {"pixel_acc": float(tp.sum() / total), "miou": float((tp[present] / union[present]).mean()) if present.any()
            else 0.0, "background_share": float(confusion[0].sum() / total)}


def f_measure(gt: np.ndarray, pred: np.ndarray, beta2: float = BETA2) -> float:
    """Foreground F-measure of one image (GT==1000 dropped); 0 when the GT has no foreground."""
    gt = np.asarray(gt).ravel()
    pred = np.asarray(pred).ravel()
    keep = gt != IGNORE
    t_fg, p_fg = gt[keep] > 0, pred[keep] > 0
    return _f_from_counts(int(t_fg.sum()), int(p_fg.sum()), int((t_fg & p_fg).sum()), beta2)


def _f_from_counts(t: float, p: float, tp: float, beta2: float = BETA2) -> float:
    """F-measure from GT, predicted and true-positive foreground pixel counts."""
    recall = tp / (t + EPS_F)
    precision = tp / (p + EPS_F)
    return float((1 + beta2) * precision * recall / (beta2 * precision + recall + EPS_F))


def image_accuracy(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> float:
    """1.0 when the largest predicted foreground class (classes 0..K) is present in the GT, else 0.0."""
    conf = confusion_matrix(gt, pred, num_classes)
    return _accuracy_from_areas(conf.sum(1), conf.sum(0))


def _accuracy_from_areas(gt_area: np.ndarray, pred_area: np.ndarray) -> float:
    """Image-level accuracy from per-class GT and predicted areas (index 0 = background)."""
    if len(pred_area) < 2:
        return 0.0
    label = int(np.argmax(pred_area[1:])) + 1
    return float(gt_area[label] > 0 and pred_area[label] > 0)


def size_percent(count: int, total: int) -> int:
    """ceil(100 * count / total) in exact integer arithmetic."""
    return -((-100 * int(count)) // int(total)) if total else 0


def size_bucket(percent: int) -> int:
    """Bucket index 0..3 (S, MS, ML, L) of an object covering `percent` of the image."""
    for index, limit in enumerate(SIZE_LIMITS):
        if percent <= limit:
            return index
    return len(SIZE_LIMITS)


# ----------------------------------------------------------------------------- boundaries

def boundary_dilation(height: int, width: int, ratio: float = BOUNDARY_RATIO) -> int:
    """Band width d = max(1, round(ratio * image diagonal)), as boundary-iou-api."""
    return max(1, int(round(ratio * math.sqrt(height ** 2 + width ** 2))))


def mask_to_boundary(mask: np.ndarray, ratio: float = BOUNDARY_RATIO) -> np.ndarray:
    """Boundary band of one binary mask (bool): mask minus its erosion on a zero-padded copy."""
    mask = np.asarray(mask).astype(bool)
    h, w = mask.shape
    d = boundary_dilation(h, w, ratio)
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1:-1, 1:-1]
    return mask & (eroded == 0)


def boundary_map(label: np.ndarray, ratio: float = BOUNDARY_RATIO) -> np.ndarray:
    """Bool map: pixel lies in the boundary band of its own label's mask (all labels at once).

    Equivalent to OR-ing ``mask_to_boundary(label == v)`` over every value v: a pixel survives the
    erosion of its label's mask exactly when its (2d+1)^2 window lies inside the image and holds only
    its own label, i.e. when the window's minimum equals its maximum.
    """
    label = np.asarray(label)
    h, w = label.shape
    d = boundary_dilation(h, w, ratio)
    if label.size and label.max() <= np.iinfo(np.uint16).max and label.min() >= 0:
        work = label.astype(np.uint16 if label.max() > 255 else np.uint8)
    else:
        _, inverse = np.unique(label, return_inverse=True)
        work = inverse.reshape(h, w).astype(np.float32)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * d + 1, 2 * d + 1))
    band = cv2.erode(work, kernel) != cv2.dilate(work, kernel)
    band[:d, :] = True
    band[-d:, :] = True
    band[:, :d] = True
    band[:, -d:] = True
    return band


# ----------------------------------------------------------------------------- per-image statistics

@dataclass
class ImageStats:
    """Everything the metrics need from one (GT, raw prediction) pair, independent of any match.

    gt_ids / pred_ids: sorted ids present anywhere in the image (GT may include 1000).
    confusion[i, j]: pixels with GT gt_ids[i] and raw prediction pred_ids[j].
    boundary[i, b, j]: pixels with GT gt_ids[i], inside (b = 1) or outside (b = 0) the GT band of their
    label, and in the predicted band of pred_ids[j] (j = len(pred_ids): in no predicted band).
    """

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    confusion: np.ndarray
    boundary: np.ndarray

    @property
    def valid_rows(self) -> np.ndarray:
        """Bool mask over gt_ids of the rows that are not the ignore label."""
        return self.gt_ids != IGNORE

    def gt_presence(self) -> List[int]:
        """GT foreground classes present in the valid pixels (0 and 1000 excluded)."""
        return [int(v) for v in self.gt_ids if v != 0 and v != IGNORE]

    def pred_presence(self) -> List[int]:
        """Raw predicted ids present in the valid pixels (0 excluded)."""
        counts = self.confusion[self.valid_rows].sum(0)
        return [int(v) for v, c in zip(self.pred_ids, counts) if c > 0 and v != 0]


DIRECT_BINS = 1 << 18


def _index(flat: np.ndarray, compact: bool) -> Tuple[np.ndarray, np.ndarray]:
    """(ids, per-pixel index into ids): the raw ids themselves, or compacted to the present ones."""
    if not compact:
        return np.arange(int(flat.max()) + 1 if flat.size else 1), flat
    counts = np.bincount(flat)
    ids = np.flatnonzero(counts)
    lut = np.zeros(len(counts), dtype=np.int32)
    lut[ids] = np.arange(len(ids), dtype=np.int32)
    return ids, lut[flat]


def image_stats(gt: np.ndarray, pred: np.ndarray, ratio: float = BOUNDARY_RATIO) -> ImageStats:
    """Compact confusion and boundary-band counts of one image (see ImageStats)."""
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape or gt.ndim != 2:
        raise ValueError(f"gt and prediction must be equal-size 2-D maps: {gt.shape} vs {pred.shape}")
    g_flat = gt.ravel().astype(np.int64, copy=False)
    p_flat = pred.ravel().astype(np.int64, copy=False)
    if g_flat.size and (g_flat.min() < 0 or p_flat.min() < 0):
        raise ValueError("label ids must be non-negative")
    g_size = int(g_flat.max()) + 1 if g_flat.size else 1
    p_size = int(p_flat.max()) + 1 if p_flat.size else 1
    # Index raw ids directly while the (gt, pred) table stays small; compact the larger side(s) otherwise.
    compact_g = g_size * p_size > DIRECT_BINS and g_size >= p_size
    gt_ids, gi = _index(g_flat, compact_g)
    pred_ids, pi = _index(p_flat, len(gt_ids) * p_size > DIRECT_BINS)
    if not compact_g and len(gt_ids) * len(pred_ids) > DIRECT_BINS:
        gt_ids, gi = _index(g_flat, True)
    ng, npred = len(gt_ids), len(pred_ids)
    confusion = np.bincount(gi * npred + pi, minlength=ng * npred).reshape(ng, npred)

    gt_band = boundary_map(gt, ratio).ravel()
    pred_band = boundary_map(pred, ratio).ravel()
    # Off-band pixels go to the extra column; arithmetic select is much faster than np.where here.
    brow = gi * 2 + gt_band
    bcol = npred + (pi - npred) * pred_band
    brow *= npred + 1
    brow += bcol
    boundary = np.bincount(brow, minlength=ng * 2 * (npred + 1)).reshape(ng, 2, npred + 1)

    rows = np.flatnonzero(confusion.sum(1))
    cols = np.flatnonzero(confusion.sum(0))
    return ImageStats(gt_ids[rows].astype(np.int64), pred_ids[cols].astype(np.int64),
                      confusion[np.ix_(rows, cols)],
                      boundary[rows][:, :, np.append(cols, npred)])


# ----------------------------------------------------------------------------- dataset accumulation

def _lookup(ids: np.ndarray, num_classes: int, match: Optional[Mapping[int, int]]) -> np.ndarray:
    """Class of each raw predicted id (see map_to_classes)."""
    if match is None:
        return np.where((ids >= 0) & (ids <= num_classes), ids, 0)
    classes = np.array([int(match.get(int(v), 0)) for v in ids], dtype=np.int64)
    return np.where((classes >= 0) & (classes <= num_classes), classes, 0)


def _merge_columns(matrix: np.ndarray, classes: np.ndarray, width: int) -> np.ndarray:
    """Sum the columns of `matrix` into `width` columns by their target index `classes`."""
    out = np.zeros((matrix.shape[0], width), dtype=np.int64)
    np.add.at(out, (slice(None), classes), matrix)
    return out


class MetricAccumulator:
    """Sums per-image statistics (after a match) into the dataset metrics; see the module docstring."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = int(num_classes)
        n = self.num_classes + 1
        self.confusion = np.zeros((n, n), dtype=np.int64)
        self.size_tp = np.zeros((4, n), dtype=np.int64)
        self.size_gt = np.zeros((4, n), dtype=np.int64)
        self.size_pred = np.zeros((4, n), dtype=np.int64)
        self.b_inter = np.zeros(n, dtype=np.int64)
        self.b_gt = np.zeros(n, dtype=np.int64)
        self.b_pred = np.zeros(n, dtype=np.int64)
        self.size_b_inter = np.zeros((4, n), dtype=np.int64)
        self.size_b_gt = np.zeros((4, n), dtype=np.int64)
        self.size_b_pred = np.zeros((4, n), dtype=np.int64)
        self.f_sum = 0.0
        self.acc_sum = 0.0
        self.num_images = 0

    def add(self, stats: ImageStats, match: Optional[Mapping[int, int]] = None) -> None:
        """Accumulate one image, predicted ids mapped through `match` (None: ids are classes)."""
        n = self.num_classes + 1
        valid = stats.valid_rows
        rows = stats.gt_ids[valid]
        if rows.size and (rows.min() < 0 or rows.max() > self.num_classes):
            raise ValueError(f"GT id {int(rows.max())} outside 0..{self.num_classes} (and not {IGNORE})")
        classes = _lookup(stats.pred_ids, self.num_classes, match)
        conf = _merge_columns(stats.confusion[valid], classes, n)  # [valid gt rows, class]
        self.confusion[rows] += conf

        gt_area = conf.sum(1)
        pred_area = conf.sum(0)
        full_gt = np.zeros(n, dtype=np.int64)
        full_gt[rows] = gt_area
        self.acc_sum += _accuracy_from_areas(full_gt, pred_area)
        fg_rows = rows > 0
        t = float(gt_area[fg_rows].sum())
        p = float(pred_area[1:].sum())
        tp = float(conf[fg_rows, 1:].sum())
        self.f_sum += _f_from_counts(t, p, tp)

        total = int(gt_area.sum())
        buckets: Dict[int, List[int]] = {}
        for r, (cls, count) in enumerate(zip(rows, gt_area)):
            if cls > 0 and count > 0:
                buckets.setdefault(size_bucket(size_percent(count, total)), []).append(r)
        # Band counts of the valid rows, predicted bands mapped to classes (last column: in no predicted band):
        # in_band[r, c] for pixels of GT rows[r] inside their GT band, any_band[r, c] for all of them.
        boundary = stats.boundary[valid]
        band_classes = np.append(classes, n)
        inside = _merge_columns(boundary[:, 1], band_classes, n + 1)
        band_gt = inside.sum(1)  # GT band pixels of each row, whatever the prediction
        in_band = inside[:, :n]
        any_band = in_band + _merge_columns(boundary[:, 0], band_classes, n + 1)[:, :n]
        band_inter = in_band[np.arange(len(rows)), rows]
        self.b_pred += any_band.sum(0)
        self.b_gt[rows] += band_gt
        self.b_inter[rows] += band_inter

        background = [r for r, cls in enumerate(rows) if cls == 0]
        for bucket, members in buckets.items():
            sel = np.array(background + members, dtype=np.intp)
            sub = conf[sel]
            self.size_gt[bucket, rows[sel]] += sub.sum(1)
            self.size_pred[bucket] += sub.sum(0)
            self.size_tp[bucket, rows[sel]] += sub[np.arange(len(sel)), rows[sel]]
            self.size_b_gt[bucket, rows[sel]] += band_gt[sel]
            self.size_b_pred[bucket] += any_band[sel].sum(0)
            self.size_b_inter[bucket, rows[sel]] += band_inter[sel]
        self.num_images += 1

    def result(self) -> Dict[str, object]:
        """Dataset metrics as fractions in [0, 1]: mIoU, IoUs, Acc, FMeasure, mBIoU, BIoUs, S/MS/ML/L, BS/BMS/BML/BL."""
        ious = iou_from_confusion(self.confusion)
        out: Dict[str, object] = {
            "mIoU": float(ious.mean()),
            "IoUs": [float(v) for v in ious],
            "Acc": self.acc_sum / max(self.num_images, 1),
            "FMeasure": self.f_sum / max(self.num_images, 1),
        }
        for index, name in enumerate(SIZE_BUCKETS):
            present = self.size_gt[index] > 0
            if present.any():
                tp = self.size_tp[index]
                iou = tp / (self.size_gt[index] + self.size_pred[index] - tp + EPS_IOU)
                out[name] = float(iou[present].mean())
            else:
                out[name] = None
        biou = self.b_inter / (self.b_gt + self.b_pred - self.b_inter + EPS_IOU)
        out["BIoUs"] = [float(v) for v in biou]
        out["mBIoU"] = float(biou.mean())
        for index, name in enumerate(BOUNDARY_SIZE_BUCKETS):
            present = self.size_b_gt[index] > 0
            if present.any():
                inter = self.size_b_inter[index]
                iou = inter / (self.size_b_gt[index] + self.size_b_pred[index] - inter + EPS_IOU)
                out[name] = float(iou[present].mean())
            else:
                out[name] = None
        return out


def evaluate_arrays(pairs: Sequence[Tuple[np.ndarray, np.ndarray]], num_classes: int,
                    match: Optional[Mapping[int, int]] = None) -> Dict[str, object]:
    """Metrics of in-memory (gt, pred) label-map pairs; convenience wrapper over MetricAccumulator."""
    accumulator = MetricAccumulator(num_classes)
    for gt, pred in pairs:
        accumulator.add(image_stats(gt, pred), match)
    result = accumulator.result()
    result["num_images"] = accumulator.num_images
    return result
