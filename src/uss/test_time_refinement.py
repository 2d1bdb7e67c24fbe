"""Test-time refinement of a fine-tuned model's predictions with region masks (the challenge entry's test.py).

Per image: the model's prediction exactly as PASS inference (uss.prediction: short side resized, logits
upsampled bilinearly to the image size, argmax; an image of more than max_pixels pixels is processed at PASS's
reduced size (1000, int(1000 * W / H)) and its label map enlarged by nearest neighbour at the end). The region
proposer (SAM's automatic masks, or superpixels) runs on the image at that same working size (an image with a
side under 32 px is enlarged for it by an integer factor). Its masks are painted largest first, so smaller masks
overwrite larger ones; each mask gets the majority vote of the model's prediction inside it (the most frequent
predicted id, background included; ties go to the smaller id). Pixels no mask covers keep the model's prediction.

When the refined map is all background, the image gets one object anyway (every ImageNet-S image holds one):
the dominant class is the foreground class with the largest total softmax probability over the logit map;
  - SAM proposer: SAM is prompted with 5 positive points (the 5 logit cells where that class is most
    probable) and 5 negative points (the 5 where it is least probable), chosen greedily in that order with a
    minimum spacing of max(1, min(h, w) // 8) cells (relaxed when too few cells qualify) and placed at the
    cell centres; SAM's best mask (highest predicted IoU of its 3 outputs) is labelled with the class
    ("sam-points" in the summary; an empty mask leaves the image background: "sam-points-empty").
  - superpixel proposer (no promptable model): the region with the highest mean probability of that class
    (the class's softmax map bilinearly upsampled to the working size; ties go to the larger region) is
    labelled with the class ("best-region").
"""
from collections import Counter
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from uss import writer
from uss.crf import DenseCrf
from uss.data.augment import network_input
from uss.data.imageops import resize_bilinear
from uss.data.split import ImageNetSSplit
from uss.prediction import MAX_PIXELS, enlarge_nearest, predict_working_label
from uss.regions import RegionProposer, sort_by_area

FALLBACK_POINTS = 5
MIN_PROPOSAL_SIDE = 32  # smaller images are enlarged for the region proposer


def majority_vote(prediction: np.ndarray, masks: Sequence[np.ndarray]) -> np.ndarray:
    """Paint each mask (in the given order, so later masks overwrite earlier ones) with the most frequent id of
    `prediction` inside it (ties: the smaller id); pixels outside every mask keep their prediction."""
    prediction = np.asarray(prediction)
    out = prediction.copy()
    for mask in masks:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != prediction.shape:
            raise ValueError(f"region mask of shape {mask.shape} does not fit the prediction {prediction.shape}")
        inside = prediction[mask]
        if inside.size:
            out[mask] = int(np.argmax(np.bincount(inside)))
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 of C x h x w logits (float64 for stable sums)."""
    shifted = logits.astype(np.float64) - logits.max(axis=0, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=0, keepdims=True)


def dominant_class(probabilities: np.ndarray) -> int:
    """The foreground class (1..K) with the largest total softmax probability (ties: the smaller id)."""
    if probabilities.shape[0] < 2:
        raise ValueError("a dominant foreground class needs at least one class besides background")
    return int(np.argmax(probabilities[1:].reshape(probabilities.shape[0] - 1, -1).sum(axis=1))) + 1


def spread_cells(values: np.ndarray, count: int, highest: bool, exclude: Sequence[Tuple[int, int]] = (),
                 spacing: Optional[int] = None) -> List[Tuple[int, int]]:
    """`count` (row, col) cells of a 2-D map, greedily in order of decreasing (highest) or increasing value
    (stable: ties in raster order), each at Chebyshev distance >= spacing from the ones already taken; the
    spacing (default max(1, min(h, w) // 8)) is relaxed step by step down to 1 when too few cells qualify.
    Cells in `exclude` are never taken. Deterministic."""
    height, width = values.shape
    spacing = max(1, min(height, width) // 8) if spacing is None else max(1, int(spacing))
    order = np.argsort(-values.ravel() if highest else values.ravel(), kind="stable")
    excluded = set((int(r), int(c)) for r, c in exclude)
    candidates = [divmod(int(i), width) for i in order]
    candidates = [cell for cell in candidates if cell not in excluded]
    for radius in range(spacing, 0, -1):
        chosen: List[Tuple[int, int]] = []
        for row, col in candidates:
            if all(max(abs(row - r), abs(col - c)) >= radius for r, c in chosen):
                chosen.append((row, col))
                if len(chosen) == count:
                    return chosen
    return chosen


def cell_centres(cells: Sequence[Tuple[int, int]], grid: Tuple[int, int], size: Tuple[int, int]) -> np.ndarray:
    """(x, y) pixel coordinates in an image of size (H, W) of the centres of (row, col) cells of an h x w grid."""
    (h, w), (height, width) = grid, size
    return np.array([[(col + 0.5) * width / w, (row + 0.5) * height / h] for row, col in cells],
                    dtype=np.float32).reshape(-1, 2)


@dataclass
class RefinedSegmenter:
    """One image -> refined label map at its original size (see the module docstring for the method)."""

    model: Any
    proposer: Optional[RegionProposer]
    short_side: int = 256
    max_pixels: Optional[int] = MAX_PIXELS
    sam_predictor: Any = None
    points: int = FALLBACK_POINTS
    crf: Optional[DenseCrf] = None  # dense-CRF refinement of the model's prediction before the region vote

    def predict(self, image: np.ndarray) -> Tuple[np.ndarray, np.ndarray, Tuple[int, int]]:
        """(logits C x h x w, argmax prediction at the working size, working size (h, w)) of an RGB image,
        exactly as uss.prediction predicts before its final nearest-neighbour enlargement."""
        import jittor as jt

        height, width = image.shape[:2]
        logits, prediction = predict_working_label(self.model, jt.array(network_input(image, self.short_side)[None]),
                                                   height, width, self.max_pixels)
        return logits[0].numpy().astype(np.float32), prediction, prediction.shape

    def regions(self, image: np.ndarray) -> List[np.ndarray]:
        """The proposer's masks for an image at the working size, largest first. An image whose short side is
        below MIN_PROPOSAL_SIDE is enlarged by an integer factor (nearest) for the proposer, which cannot
        handle a few pixels (SAM's crops get empty), and the masks are sampled back at the pixel centres."""
        if self.proposer is None:
            return []
        factor = -(-MIN_PROPOSAL_SIDE // max(1, min(image.shape[:2])))
        if factor <= 1:
            return sort_by_area(self.proposer.propose(image))
        enlarged = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
        masks = [np.asarray(m, bool)[factor // 2::factor, factor // 2::factor] for m in self.proposer.propose(enlarged)]
        return sort_by_area(masks)

    def prompt_points(self, prob: np.ndarray, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
        """SAM prompts from a class's probability map (h x w): (coords N x 2 as x, y in an image of `size`,
        labels N: 1 for the `points` most probable cells, 0 for the `points` least probable ones; fewer, as many
        of each, when the map has fewer than 2 * points cells)."""
        count = max(1, min(self.points, prob.size // 2))
        positives = spread_cells(prob, count, highest=True)
        negatives = spread_cells(prob, count, highest=False, exclude=positives)
        coords = cell_centres(positives + negatives, prob.shape, size)
        return coords, np.array([1] * len(positives) + [0] * len(negatives), np.int32)

    def crf_prediction(self, work_image: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """The prediction after dense-CRF inference on the class probabilities (the logits upsampled bilinearly to
        the working size, as the plain prediction, then softmax) and the image's colours."""
        height, width = work_image.shape[:2]
        upsampled = np.stack([cv2.resize(channel, (width, height), interpolation=cv2.INTER_LINEAR)
                              for channel in logits.astype(np.float32)])
        return self.crf.refine(work_image, softmax(upsampled)).argmax(axis=0).astype(np.int32)

    def fallback(self, image: np.ndarray, logits: np.ndarray, masks: Sequence[np.ndarray]) -> Tuple[np.ndarray, str]:
        """(label map with one region of the dominant class, what was done) for an all-background image."""
        height, width = image.shape[:2]
        probabilities = softmax(logits)
        cls = dominant_class(probabilities)
        prob = probabilities[cls]
        label = np.zeros((height, width), np.int32)
        if self.sam_predictor is not None:
            coords, labels = self.prompt_points(prob, (height, width))
            self.sam_predictor.set_image(image)
            sam_masks, iou, _ = self.sam_predictor.predict(point_coords=coords, point_labels=labels,
                                                           multimask_output=True)
            self.sam_predictor.reset_image()
            best = np.asarray(sam_masks[int(np.argmax(iou))], bool)
            label[best] = cls
            return label, "sam-points" if best.any() else "sam-points-empty"
        if not masks:
            return label, "no-region"
        upsampled = cv2.resize(prob.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        upsampled = upsampled.reshape(height, width)
        means = [float(upsampled[m].mean()) if m.any() else -1.0 for m in masks]
        best_index = int(np.argmax(means))  # masks are largest first: ties go to the larger region
        label[masks[best_index]] = cls
        return label, "best-region"

    def __call__(self, image: np.ndarray) -> Tuple[np.ndarray, Optional[str]]:
        """(label map H x W int32 at the image's size, fallback used or None) of an RGB uint8 image."""
        height, width = image.shape[:2]
        logits, prediction, work = self.predict(image)
        work_image = resize_bilinear(image, *work)
        if self.crf is not None:
            prediction = self.crf_prediction(work_image, logits)
        masks = self.regions(work_image)
        refined = majority_vote(prediction, masks)
        used = None
        if not refined.any():
            refined, used = self.fallback(work_image, logits, masks)
        return enlarge_nearest(refined, height, width), used


def segment_split(segmenter: RefinedSegmenter, split: ImageNetSSplit, pred_dir: str, part: writer.Part = writer.Part(),
                  workers: int = 2, progress: bool = True, desc: str = "test", decode_truncated: bool = False
                  ) -> Tuple[writer.WriteSummary, Counter]:
    """Write the refined prediction of every image of this process's part not already done (uss.writer);
    returns (the writer's summary, how many images took each all-background fallback)."""
    fallbacks: Counter = Counter()

    def label(image: np.ndarray, name: str) -> np.ndarray:
        refined, used = segmenter(image)
        if used:
            fallbacks[used] += 1
        return refined

    summary = writer.write_split(split, pred_dir, label, part, desc, workers, decode_truncated=decode_truncated,
                                 progress=progress)
    return summary, fallbacks
