"""Numpy helpers for automatic mask generation: mask records, point grids, crops, RLE,
stability scores, box NMS and small-region clean-up."""
import math
from itertools import product
from typing import Any, Dict, Iterator, List, Sequence, Tuple, Union

import cv2
import numpy as np

Rle = Dict[str, Any]


class MaskData:
    """Column store of per-mask values (numpy arrays or lists) filtered and concatenated together."""

    def __init__(self, **columns: Union[np.ndarray, list]) -> None:
        for value in columns.values():
            self._check(value)
        self._cols: Dict[str, Union[np.ndarray, list]] = dict(columns)

    @staticmethod
    def _check(value: Any) -> None:
        """Only numpy arrays and lists may be stored."""
        if not isinstance(value, (np.ndarray, list)):
            raise TypeError(f"MaskData stores numpy arrays or lists, got {type(value).__name__}")

    def __setitem__(self, key: str, value: Union[np.ndarray, list]) -> None:
        self._check(value)
        self._cols[key] = value

    def __getitem__(self, key: str) -> Union[np.ndarray, list]:
        return self._cols[key]

    def __delitem__(self, key: str) -> None:
        del self._cols[key]

    def __contains__(self, key: str) -> bool:
        return key in self._cols

    def __len__(self) -> int:
        for value in self._cols.values():
            return len(value)
        return 0

    def keys(self) -> List[str]:
        """Column names."""
        return list(self._cols)

    def items(self):
        """(name, column) pairs."""
        return self._cols.items()

    def filter(self, keep: np.ndarray) -> None:
        """Keep rows selected by a boolean mask or an index array (indices also reorder)."""
        keep = np.asarray(keep)
        if keep.dtype == bool:
            index = np.flatnonzero(keep)
        else:
            index = keep.astype(np.int64).reshape(-1)
        for key, value in self._cols.items():
            if isinstance(value, np.ndarray):
                self._cols[key] = value[index]
            else:
                self._cols[key] = [value[i] for i in index]

    def cat(self, other: "MaskData") -> None:
        """Append the rows of other (columns missing here are adopted)."""
        for key, value in other.items():
            mine = self._cols.get(key)
            if mine is None:
                self._cols[key] = value.copy() if isinstance(value, np.ndarray) else list(value)
            elif isinstance(value, np.ndarray):
                self._cols[key] = np.concatenate([mine, value], axis=0)
            else:
                self._cols[key] = list(mine) + list(value)


def batch_iterator(batch_size: int, *arrays: Sequence) -> Iterator[List[Sequence]]:
    """Yield aligned slices of at most batch_size rows from equally long sequences."""
    if not arrays or any(len(a) != len(arrays[0]) for a in arrays):
        raise ValueError("batch_iterator needs one or more sequences of equal length")
    for start in range(0, len(arrays[0]), batch_size):
        yield [a[start : start + batch_size] for a in arrays]


def build_point_grid(n_per_side: int) -> np.ndarray:
    """(n*n, 2) x/y points at cell centres of an n x n grid over [0, 1]^2, row-major."""
    offset = 1.0 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(n_per_side: int, n_layers: int, scale_per_layer: int) -> List[np.ndarray]:
    """Point grids for crop layers 0..n_layers, each layer having n_per_side / scale**i points a side."""
    return [build_point_grid(int(n_per_side / (scale_per_layer ** i))) for i in range(n_layers + 1)]


def generate_crop_boxes(
    im_size: Tuple[int, int], n_layers: int, overlap_ratio: float
) -> Tuple[List[List[int]], List[int]]:
    """xyxy crop boxes: the full image, then (2**i)**2 overlapping crops for layer i = 1..n_layers."""
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    boxes: List[List[int]] = [[0, 0, im_w, im_h]]
    layers: List[int] = [0]
    for layer in range(1, n_layers + 1):
        per_side = 2 ** layer
        overlap = int(overlap_ratio * short_side * (2 / per_side))
        crop_w = int(math.ceil((overlap * (per_side - 1) + im_w) / per_side))
        crop_h = int(math.ceil((overlap * (per_side - 1) + im_h) / per_side))
        x0s = [int((crop_w - overlap) * i) for i in range(per_side)]
        y0s = [int((crop_h - overlap) * i) for i in range(per_side)]
        for x0, y0 in product(x0s, y0s):
            boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layers.append(layer)
    return boxes, layers


def uncrop_boxes_xyxy(boxes: np.ndarray, crop_box: Sequence[int]) -> np.ndarray:
    """Shift xyxy boxes from crop coordinates to image coordinates."""
    x0, y0 = crop_box[0], crop_box[1]
    return boxes + np.array([x0, y0, x0, y0], dtype=boxes.dtype if boxes.dtype.kind == "f" else np.int64)


def uncrop_points(points: np.ndarray, crop_box: Sequence[int]) -> np.ndarray:
    """Shift x/y points from crop coordinates to image coordinates."""
    return points + np.array([crop_box[0], crop_box[1]], dtype=points.dtype if points.dtype.kind == "f" else np.int64)


def uncrop_masks(masks: np.ndarray, crop_box: Sequence[int], orig_h: int, orig_w: int) -> np.ndarray:
    """Zero-pad (N, h, w) crop masks into the (N, orig_h, orig_w) image frame."""
    x0, y0, x1, y1 = crop_box
    if x0 == 0 and y0 == 0 and x1 == orig_w and y1 == orig_h:
        return masks
    pad = ((0, 0), (y0, orig_h - y1), (x0, orig_w - x1))
    return np.pad(masks, pad, mode="constant", constant_values=False)


def is_box_near_crop_edge(
    boxes: np.ndarray, crop_box: Sequence[int], orig_box: Sequence[int], atol: float = 20.0
) -> np.ndarray:
    """True for crop-frame boxes that touch a crop edge which is not also an image edge."""
    shifted = uncrop_boxes_xyxy(boxes, crop_box).astype(np.float32)
    near_crop = np.abs(shifted - np.asarray(crop_box, dtype=np.float32)[None]) <= atol
    near_image = np.abs(shifted - np.asarray(orig_box, dtype=np.float32)[None]) <= atol
    return np.any(near_crop & ~near_image, axis=1)


def box_xyxy_to_xywh(box: np.ndarray) -> np.ndarray:
    """Convert one xyxy box to xywh."""
    out = np.array(box, copy=True)
    out[2] = out[2] - out[0]
    out[3] = out[3] - out[1]
    return out


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of (N, 4) xyxy boxes."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def batched_mask_to_box(masks: np.ndarray) -> np.ndarray:
    """Tight xyxy boxes (inclusive max) of boolean masks (..., H, W); [0, 0, 0, 0] for empty masks."""
    lead = masks.shape[:-2]
    h, w = masks.shape[-2:]
    if masks.size == 0:
        return np.zeros(lead + (4,), dtype=np.int64)
    flat = masks.reshape((-1, h, w))
    rows = flat.any(axis=2)
    cols = flat.any(axis=1)
    empty = ~rows.any(axis=1)
    top = np.argmax(rows, axis=1)
    bottom = h - 1 - np.argmax(rows[:, ::-1], axis=1)
    left = np.argmax(cols, axis=1)
    right = w - 1 - np.argmax(cols[:, ::-1], axis=1)
    out = np.stack([left, top, right, bottom], axis=1).astype(np.int64)
    out[empty] = 0
    return out.reshape(lead + (4,))


def calculate_stability_score(logits: np.ndarray, mask_threshold: float, offset: float) -> np.ndarray:
    """IoU between masks thresholded at mask_threshold + offset and mask_threshold - offset."""
    inner = (logits > (mask_threshold + offset)).sum(axis=(-1, -2), dtype=np.int64)
    outer = (logits > (mask_threshold - offset)).sum(axis=(-1, -2), dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inner.astype(np.float32) / outer.astype(np.float32)


def mask_to_rle(masks: np.ndarray) -> List[Rle]:
    """Uncompressed column-major RLE ({'size': [h, w], 'counts': [...]}, zeros first) of (N, H, W) masks."""
    n, h, w = masks.shape
    flat = np.ascontiguousarray(masks.transpose(0, 2, 1)).reshape(n, h * w).astype(bool)
    out: List[Rle] = []
    for i in range(n):
        row = flat[i]
        change = np.flatnonzero(row[1:] != row[:-1]) + 1
        bounds = np.concatenate([[0], change, [h * w]])
        counts = np.diff(bounds).tolist()
        if row[0]:
            counts = [0] + counts
        out.append({"size": [h, w], "counts": counts})
    return out


def rle_to_mask(rle: Rle) -> np.ndarray:
    """Decode an uncompressed RLE into an (h, w) boolean mask."""
    h, w = rle["size"]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    values = (np.arange(len(counts)) % 2).astype(bool)
    flat = np.repeat(values, counts)
    return flat.reshape(w, h).transpose()


def area_from_rle(rle: Rle) -> int:
    """Number of foreground pixels of an uncompressed RLE."""
    return int(sum(rle["counts"][1::2]))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS on xyxy boxes; returns kept indices by decreasing score (ties keep input order)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores).reshape(-1)
    if boxes.shape[0] == 0:
        return np.zeros((0,), dtype=np.int64)
    order = np.argsort(-scores.astype(np.float64), kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(order), dtype=bool)
    keep: List[int] = []
    thr = np.float32(iou_threshold)
    with np.errstate(divide="ignore", invalid="ignore"):
        for pos, idx in enumerate(order):
            if suppressed[pos]:
                continue
            keep.append(int(idx))
            rest = order[pos + 1 :]
            iw = np.maximum(np.float32(0), np.minimum(x2[idx], x2[rest]) - np.maximum(x1[idx], x1[rest]))
            ih = np.maximum(np.float32(0), np.minimum(y2[idx], y2[rest]) - np.maximum(y1[idx], y1[rest]))
            inter = iw * ih
            iou = inter / (areas[idx] + areas[rest] - inter)
            suppressed[pos + 1 :] |= iou > thr
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, categories: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NMS applied independently per category; kept indices sorted by decreasing score."""
    categories = np.asarray(categories).reshape(-1)
    if len(categories) == 0 or np.all(categories == categories[0]):
        return nms(boxes, scores, iou_threshold)
    kept = [np.flatnonzero(categories == c)[nms(boxes[categories == c], scores[categories == c], iou_threshold)]
            for c in np.unique(categories)]
    keep = np.concatenate(kept)
    return keep[np.argsort(-np.asarray(scores, dtype=np.float64)[keep], kind="stable")]


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> Tuple[np.ndarray, bool]:
    """Fill holes ('holes') or drop islands ('islands') smaller than area_thresh; returns (mask, changed)."""
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    fill_holes = mode == "holes"
    working = (mask ^ fill_holes).astype(np.uint8)
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(working, connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    small = [i + 1 for i, s in enumerate(sizes) if s < area_thresh]
    if not small:
        return mask, False
    if fill_holes:
        # Background of the inverted mask plus small holes become foreground of the result.
        keep_labels = [0] + small
    else:
        keep_labels = [i for i in range(1, n_labels) if i not in small]
        if not keep_labels:
            keep_labels = [int(np.argmax(sizes)) + 1]
    return np.isin(labels, keep_labels), True
