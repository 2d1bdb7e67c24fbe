"""Pseudo labels from the pixel-attention model and the k-means centroids: per pixel (PASS) and per region mask
(the challenge entry's "SAM grid-mask" labels). Both share one body, `PixelLabeler.maps`.

Per pixel: for an image resized to the short side, cosine similarity of every (x4-upsampled, L2-normalised)
pixel feature to every centroid, argmax + 1, nearest-upsampled to the image size; pixels whose channel-mean
attention (bilinearly upsampled, then read in the threshold's scale: raw, or standardised per image) is on the
background side of the threshold become 0.

Per mask: the region proposer's masks (SAM's automatic generator, or superpixels) are sorted by area, largest
first, and painted in that order so smaller masks overwrite larger ones. Each mask gets the centroid (cosine,
argmax) of the mean pixel feature inside it, or background when the mask's mean attention is on the background
side of the mask threshold. Pixels no mask covers keep the per-pixel label.
"""
from typing import Callable, List, Sequence, Tuple

import cv2
import numpy as np

from uss.data.augment import network_input
from uss.errors import InputError
from uss.labeling.threshold import BELOW, RAW, apply_threshold, is_background, scale_attention
from uss.regions import RegionProposer, sort_by_area


def load_centroids(path: str) -> np.ndarray:
    """The K x C k-means centroids of cluster.py (float32); one-line InputError for a bad file."""
    try:
        centroids = np.load(path)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read centroids ({error})") from None
    if centroids.ndim != 2:
        raise InputError(f"{path}: centroids must be a K x C matrix, got shape {centroids.shape}")
    return centroids.astype(np.float32)


class PixelLabeler:
    """Class map (1..K) and channel-mean attention at the image's size (in `attention_scale`), for any threshold."""

    def __init__(self, model, centroids: np.ndarray, short_side: int = 256, attention_scale: str = RAW):
        import jittor as jt

        self.model = model
        self.attention_scale = attention_scale
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
        x = jt.array(network_input(image, self.short_side)[None])
        with jt.no_grad():
            feats, attention = self.model.attention_map(x)
        return feats[0], attention[0, 0]

    def classify(self, vectors):
        """Centroid id + 1 (1..K) of each row of an N x C jittor Var, by cosine similarity."""
        import jittor as jt

        vectors = jt.normalize(vectors, p=2, dim=1)
        return jt.argmax(jt.matmul(vectors, self.centroids.transpose(1, 0)), dim=1)[0] + 1

    def maps(self, image: np.ndarray, masks: Sequence[np.ndarray] = ()) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(class ids HxW int32 in 1..K, attention HxW float32 in `attention_scale`, class 1..K of the mean feature
        of each mask) for an RGB uint8 image and boolean HxW masks."""
        import jittor as jt

        height, width = image.shape[:2]
        with jt.no_grad():
            feats, attention = self.features(image)
            channels, h, w = feats.shape
            flat = feats.reshape(channels, h * w).transpose(1, 0)
            classes = self.classify(flat).reshape(h, w).numpy().astype(np.int32)
            attention = attention.numpy().astype(np.float32)
            if len(masks):
                # Each mask's share of every feature cell: its mean feature is a weighted mean of cells.
                weights = np.stack([cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA).ravel()
                                    for m in masks])
                empty = weights.sum(1) <= 0
                weights[empty] = 1.0 / (h * w)  # a mask too small to touch any cell: fall back to the image mean
                mask_classes = self.classify(jt.matmul(jt.array(weights), flat)).numpy().astype(np.int32)
            else:
                mask_classes = np.zeros(0, np.int32)
        classes = cv2.resize(classes, (width, height), interpolation=cv2.INTER_NEAREST)
        attention = cv2.resize(attention, (width, height), interpolation=cv2.INTER_LINEAR)
        return classes, scale_attention(attention, self.attention_scale), mask_classes

    def __call__(self, image: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(class ids HxW int32 in 1..K, attention HxW float32) for an RGB uint8 image."""
        classes, attention, _ = self.maps(image)
        return classes, attention


class MaskLabeler:
    """Mask-based labels from a PixelLabeler (features, attention, centroids) and a region proposer."""

    def __init__(self, labeler: PixelLabeler, proposer: RegionProposer, pixel_threshold: float,
                 pixel_side: str = BELOW):
        self.labeler = labeler
        self.proposer = proposer
        self.pixel_threshold = pixel_threshold
        self.pixel_side = pixel_side

    def regions(self, image: np.ndarray) -> Tuple[np.ndarray, List[np.ndarray], np.ndarray, np.ndarray]:
        """(per-pixel labels, masks largest first, their classes 1..K, their mean attentions)."""
        masks = sort_by_area(self.proposer.propose(image))
        classes, attention, mask_classes = self.labeler.maps(image, masks)
        per_pixel = apply_threshold(classes, attention, self.pixel_threshold, self.pixel_side)
        mask_attention = np.array([float(attention[m].mean()) if m.any() else 0.0 for m in masks], np.float32)
        return per_pixel, masks, mask_classes, mask_attention

    def prepare(self, image: np.ndarray) -> Callable[..., np.ndarray]:
        """Do the expensive part once; returns label_at(mask_threshold, side) -> HxW ids."""
        per_pixel, masks, mask_classes, mask_attention = self.regions(image)

        def label_at(threshold: float, side: str = BELOW) -> np.ndarray:
            label = per_pixel.copy()
            background = is_background(mask_attention, threshold, side)
            for mask, cls, bg in zip(masks, mask_classes, background):
                label[mask] = 0 if bg else cls
            return label

        return label_at

    def __call__(self, image: np.ndarray, threshold: float, side: str = BELOW) -> np.ndarray:
        return self.prepare(image)(threshold, side)
