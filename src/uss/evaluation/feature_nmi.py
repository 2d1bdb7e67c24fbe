"""How much class information an image representation carries, label-free by k-means: NMI of k-means on hue
histograms (what colour alone gives) and on a backbone's globally pooled C5 features (what the backbone has
learnt), on the images as they are and recoloured at random (what is left without colour).

The class of an image is its folder's (the ImageNet-S train layout); k equals the number of classes. Used by
`benchmarks/demo_data.py` (the demo data's numbers) and by the test that self-supervised pretraining learns."""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from uss.data import augment
from uss.data.augment import FINETUNE_MEAN, FINETUNE_STD
from uss.data.image_io import load_rgb
from uss.data.layout import class_of, load_categories
from uss.data.split import ImageNetSSplit

HUE_BINS = 36


def load_split(root: str, split: str = "train", limit_per_class: Optional[int] = None
               ) -> Tuple[List[np.ndarray], np.ndarray]:
    """(RGB uint8 images, 0-based class per image from its folder) of an ImageNet-S-layout split."""
    categories = load_categories(root)
    images_of = ImageNetSSplit(root, split)
    taken: Dict[int, int] = {}
    images, classes = [], []
    for name in images_of.names:
        k = class_of(name, categories)
        if limit_per_class is not None and taken.get(k, 0) >= limit_per_class:
            continue
        taken[k] = taken.get(k, 0) + 1
        images.append(load_rgb(images_of.image_path(name)))
        classes.append(k - 1)
    return images, np.asarray(classes, dtype=np.int64)


def _hsv(image: np.ndarray) -> np.ndarray:
    import cv2  # local: keeps the import light

    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL).astype(np.float64)
    return hsv / 255.0


def hue_histograms(images: Sequence[np.ndarray], bins: int = HUE_BINS) -> np.ndarray:
    """N x bins hue histograms, each pixel weighted by its saturation x value (grey pixels carry no hue)."""
    rows = []
    for image in images:
        hsv = _hsv(image)
        weights = (hsv[..., 1] * hsv[..., 2]).ravel()
        counts = np.bincount(np.minimum((hsv[..., 0].ravel() * bins).astype(np.int64), bins - 1),
                             weights=weights, minlength=bins)
        rows.append(counts / max(counts.sum(), 1e-12))
    return np.stack(rows).astype(np.float32)


def recolour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image with every hue rotated by one random angle (saturation and value kept)."""
    import cv2

    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL)
    shift = int(rng.integers(0, 256))
    hsv[..., 0] = ((hsv[..., 0].astype(np.int64) + shift) % 256).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)


def recoloured(images: Sequence[np.ndarray], seed: int = 0) -> List[np.ndarray]:
    """Every image recoloured at random (one generator, so the same seed gives the same colours)."""
    rng = np.random.default_rng(seed)
    return [recolour(image, rng) for image in images]


def pooled_features(backbone, images: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """N x C unit-norm global-average-pooled C5 features of a backbone in eval mode (images as fine-tuning
    normalises them, at their own size; all images of one size)."""
    import jittor as jt

    backbone.eval()
    rows = []
    with jt.no_grad():
        for start in range(0, len(images), batch_size):
            batch = np.stack([augment.normalize(image, FINETUNE_MEAN, FINETUNE_STD)
                              for image in images[start:start + batch_size]])
            c5 = backbone(jt.array(batch))[-1]
            rows.append(c5.mean(dims=(2, 3)).numpy())
    features = np.concatenate(rows).astype(np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def kmeans_nmi(features: np.ndarray, classes: np.ndarray, k: Optional[int] = None, seed: int = 0,
               restarts: int = 10, iterations: int = 50) -> float:
    """NMI between the classes and k-means (faiss, as the cluster stage runs it) on the features."""
    from uss.clustering import clustering_scores, kmeans

    k = int(k or classes.max() + 1)
    _, labels, _ = kmeans(np.ascontiguousarray(features, dtype=np.float32), k, restarts, iterations, seed)
    return clustering_scores(labels, classes, k)["nmi"]


def load_backbone(checkpoint: str):
    """The backbone of a pretraining or pixel-attention checkpoint, with its weights, in eval mode."""
    from uss.models.resnet import backbone_options, build_resnet
    from uss.checkpoints.native import load_checkpoint, load_model_state

    state = load_checkpoint(checkpoint)
    saved = state.get("args") or {}
    if "arch" not in saved:
        raise ValueError(f"{checkpoint}: no saved arguments (arch, width, stem): not a checkpoint of this project")
    weights = {key[len("backbone."):]: value for key, value in state["state_dict"].items()
               if key.startswith("backbone.")}
    backbone = build_resnet(int(saved["arch"].replace("resnet", "")), **backbone_options(saved))
    load_model_state(backbone, weights, checkpoint)
    backbone.eval()
    return backbone
