"""Dense CRF refinement of a label map (Krähenbühl and Koltun, "Efficient Inference in Fully Connected CRFs with
Gaussian Edge Potentials", NeurIPS 2011), in numpy and scipy.

Why not a package: pydensecrf, pydensecrf2 and SimpleCRF (the maintained wrappers of the authors' C++ code) ship no
wheel for Python 3.11 on the package index this project installs from, only sources that need Cython and a C++
build; this module is the same model and the same inference with no build step.

The model: a Potts CRF over all pixel pairs with two Gaussian kernels, an appearance kernel on position and colour
(w1, theta_alpha, theta_beta) and a smoothness kernel on position (w2, theta_gamma); the defaults are those of
pydensecrf's README example (10, 80 px, 13 colour levels; 3, 3 px). Mean-field inference
filters the class marginals with each kernel by the permutohedral lattice (Adams, Baek and Davis, Eurographics
2010), the authors' method, built here from sparse matrices: splat, blur along each of the d + 1 lattice directions
with [1/2 1 1/2], slice. The appearance filter is normalised symmetrically, as pydensecrf does by default; the
smoothness kernel, a plain Gaussian blur of the marginals, needs no lattice.
"""
from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np
from scipy import sparse

KEY_BITS = 12  # per lattice coordinate when packing a key into one int64 (5 coordinates: 60 bits)


class Lattice:
    """The permutohedral lattice of N points with d features (already divided by their kernel widths)."""

    def __init__(self, features: np.ndarray):
        features = np.asarray(features, np.float64)
        n, d = features.shape
        # Elevate to the hyperplane sum(x) = 0 of R^(d+1), scaled so that the blur below has unit-variance weights.
        scale = np.sqrt(2.0 / 3.0) * (d + 1) / np.sqrt((np.arange(d) + 1.0) * (np.arange(d) + 2.0))
        scaled = features * scale
        elevated = np.zeros((n, d + 1))
        suffix = np.cumsum(scaled[:, ::-1], axis=1)[:, ::-1]  # suffix[:, j] = sum of scaled[:, j:]
        for j in range(d, 0, -1):
            elevated[:, j] = (suffix[:, j] if j < d else 0.0) - j * scaled[:, j - 1]
        elevated[:, 0] = suffix[:, 0]
        # The nearest remainder-0 lattice point, then the rank of each coordinate's residual.
        down = np.floor(elevated / (d + 1)) * (d + 1)
        up = down + (d + 1)
        rem0 = np.where(up - elevated < elevated - down, up, down)
        total = np.rint(rem0.sum(axis=1) / (d + 1)).astype(np.int64)
        residual = elevated - rem0
        index = np.arange(d + 1)
        greater = residual[:, None, :] > residual[:, :, None]           # [p, i, j]: residual j > residual i
        greater_equal = residual[:, None, :] >= residual[:, :, None]
        rank = (np.where(index[None, :] > index[:, None], greater, greater_equal)
                & (index[None, :] != index[:, None])).sum(axis=2)
        # Walk back onto the plane: coordinates ranked past the overshoot move by d + 1.
        positive = (total[:, None] > 0) & (rank >= d + 1 - total[:, None])
        negative = (total[:, None] < 0) & (rank < -total[:, None])
        rem0 = rem0 - (d + 1) * positive + (d + 1) * negative
        rank = rank + total[:, None] - (d + 1) * positive + (d + 1) * negative
        # Barycentric weights of the d + 1 vertices of the enclosing simplex.
        value = (elevated - rem0) / (d + 1)
        barycentric = np.zeros((n, d + 2))
        rows = np.repeat(np.arange(n), d + 1)
        np.add.at(barycentric, (rows, (d - rank).ravel()), value.ravel())
        np.add.at(barycentric, (rows, (d - rank + 1).ravel()), -value.ravel())
        barycentric[:, 0] += 1.0 + barycentric[:, d + 1]
        # The vertices' keys (their first d coordinates) for each remainder r = 0..d.
        canonical = np.array([[r if j <= d - r else r - (d + 1) for j in range(d + 1)] for r in range(d + 1)])
        keys = rem0[:, None, :d].astype(np.int64) + canonical[:, rank[:, :d]].transpose(1, 0, 2)  # (n, d+1, d)
        keys = keys.reshape(-1, d)
        self.offset = keys.min(axis=0) - (d + 1)  # room below for the neighbours' steps of up to d + 1
        if (keys.max(axis=0) - self.offset + d + 1 >= 2 ** KEY_BITS).any():
            raise ValueError("dense CRF: the features span too many lattice cells; use larger kernel widths")
        self.keys, inverse = np.unique(self._pack(keys), return_inverse=True)
        self.d = d
        m = len(self.keys)
        vertices = (inverse.ravel(), np.repeat(np.arange(n), d + 1))
        self.splat = sparse.csr_matrix((barycentric[:, :d + 1].ravel(), vertices), shape=(m, n))
        unique_keys = self._unpack(self.keys)
        self.blurs = [self._blur_matrix(unique_keys, j) for j in range(d + 1)]
        self.alpha = 1.0 / (1.0 + 2.0 ** -d)

    def _pack(self, keys: np.ndarray) -> np.ndarray:
        """Each row of integer keys as one int64 (KEY_BITS per coordinate above self.offset); -1 for a row outside
        the packable range (a neighbour beyond the lattice's extent, so not a lattice point)."""
        shifted = keys - self.offset
        inside = ((shifted >= 0) & (shifted < 2 ** KEY_BITS)).all(axis=1)
        packed = np.zeros(len(keys), np.int64)
        for column in range(keys.shape[1]):
            packed = (packed << KEY_BITS) | np.where(inside, shifted[:, column], 0)
        return np.where(inside, packed, -1)

    def _unpack(self, packed: np.ndarray) -> np.ndarray:
        columns = []
        for _ in range(len(self.offset)):
            columns.append(packed & (2 ** KEY_BITS - 1))
            packed = packed >> KEY_BITS
        return np.stack(columns[::-1], axis=1) + self.offset

    def _blur_matrix(self, keys: np.ndarray, direction: int) -> sparse.csr_matrix:
        """I + (neighbour -1 + neighbour +1) / 2 along one lattice direction (missing neighbours hold zero)."""
        m, d = keys.shape
        step = -np.ones(d, np.int64)
        if direction < d:
            step[direction] = d
        rows, cols = [np.arange(m)], [np.arange(m)]
        weights = [np.ones(m)]
        for sign in (1, -1):
            packed = self._pack(keys + sign * step)
            found = np.searchsorted(self.keys, packed)
            found = np.minimum(found, m - 1)
            hit = (packed >= 0) & (self.keys[found] == packed)
            rows.append(np.nonzero(hit)[0])
            cols.append(found[hit])
            weights.append(np.full(int(hit.sum()), 0.5))
        return sparse.csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(m, m))

    def filter(self, values: np.ndarray) -> np.ndarray:
        """Gaussian filtering of N x C values over the features (splat, blur, slice)."""
        lattice = self.splat @ values
        for blur in self.blurs:
            lattice = blur @ lattice
        return self.alpha * (self.splat.T @ lattice)


@dataclass
class DenseCrf:
    """Settings of dense-CRF refinement; pydensecrf's example values (appearance 10 / 80 px / 13 colour levels,
    smoothness 3 / 3 px, 5 mean-field iterations) unless given."""
    appearance_weight: float = 10.0
    appearance_xy: float = 80.0
    appearance_rgb: float = 13.0
    smoothness_weight: float = 3.0
    smoothness_xy: float = 3.0
    iterations: int = 5

    def refine(self, image: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """Class marginals C x H x W after mean-field inference, for an RGB uint8 image and C x H x W
        probabilities (the unary potentials are their negative logarithms)."""
        channels, height, width = probabilities.shape
        if image.shape[:2] != (height, width):
            raise ValueError(f"image {image.shape[:2]} and probabilities {(height, width)} differ in size")
        yy, xx = np.mgrid[:height, :width].astype(np.float64)
        features = np.concatenate([np.stack([xx.ravel(), yy.ravel()], 1) / self.appearance_xy,
                                   image.reshape(-1, 3).astype(np.float64) / self.appearance_rgb], axis=1)
        appearance = Lattice(features)
        norm = 1.0 / np.sqrt(appearance.filter(np.ones((height * width, 1))) + 1e-20)
        unary = -np.log(np.clip(probabilities.reshape(channels, -1).T, 1e-10, 1.0))
        marginals = _softmax(-unary)
        for _ in range(self.iterations):
            message = self.appearance_weight * norm * appearance.filter(norm * marginals)
            smooth = np.stack([cv2.GaussianBlur(marginals[:, c].reshape(height, width), (0, 0), self.smoothness_xy)
                               for c in range(channels)], axis=2).reshape(-1, channels)
            message = message + self.smoothness_weight * smooth
            # Potts compatibility: a pixel pays for the mass its neighbours put on every other label.
            marginals = _softmax(-unary + message)
        return marginals.T.reshape(channels, height, width)

    def refine_labels(self, image: np.ndarray, labels: np.ndarray, num_labels: int,
                      confidence: float = 0.7) -> np.ndarray:
        """A hard label map (ids 0..num_labels-1) refined: each pixel's own label starts at `confidence`, the rest
        share the remainder (pydensecrf's unary_from_labels)."""
        rest = (1.0 - confidence) / max(num_labels - 1, 1)
        probabilities = np.full((num_labels,) + labels.shape, rest, np.float64)
        np.put_along_axis(probabilities, labels[None].astype(np.int64), confidence, axis=0)
        return self.refine(image, probabilities).argmax(axis=0).astype(labels.dtype)


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


def with_crf(label_fn: Callable[[np.ndarray, str], np.ndarray], num_labels: int,
             crf: Optional[DenseCrf] = None) -> Callable[[np.ndarray, str], np.ndarray]:
    """A writer's label function (image, name) -> ids 0..num_labels-1, followed by dense-CRF refinement."""
    crf = crf or DenseCrf()

    def refined(image: np.ndarray, name: str) -> np.ndarray:
        return crf.refine_labels(image, label_fn(image, name), num_labels)

    return refined
