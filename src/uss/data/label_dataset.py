"""Training pairs (image, pseudo label) for PASS pixel-level fine-tuning.

Pseudo labels live at ``<labels>/<wnid>/<name>.png`` (the image's relative path with .png; ImageNet-S
label PNGs: id = R + 256 * G, 0 background, 1..K classes, 1000 ignored). A label whose size differs from
its image is first resized to the image size (nearest neighbour). The training transform is PASS's:
one RandomResizedCrop (scale 0.08..1, aspect 3/4..4/3) and one horizontal flip applied identically to
image (bilinear, PIL, as PASS) and label (nearest), ImageNet normalisation, and the label downsampled
by `label_scale` (0.5 for ImageNet-S50/300, 0.25 for 919 in PASS) with nearest neighbour.

Nearest neighbour here always samples at pixel centres (source index floor((i + 0.5) * in / out)), the
same sampling as the bilinear image resize, so label and image stay aligned after every resize.

Every random choice for image i in epoch e comes from numpy's Generator seeded with (seed, e, i), so a
resumed run sees exactly the crops an uninterrupted run sees, whatever the workers or MPI ranks.
"""
import os
from typing import Dict, List, Sequence, Set, Tuple

import numpy as np

from uss.data import augment, layout
from uss.data.augment import FINETUNE_MEAN, FINETUNE_STD
from uss.data.imageops import resize_bilinear  # noqa: F401  (PIL bilinear, as PASS; re-exported)
from uss.data.dataset import PLACEHOLDER
from uss.data.image_io import ImageFileError, load_rgb
from uss.data.label_png import IGNORE, LabelFileError, read_label_png
from uss.data.epochs import EpochDataset
from uss.data.split import ImageNetSSplit
from uss.errors import InputError

MAX_LISTED = 5


class PseudoLabelError(InputError, ValueError):
    """Missing pseudo labels, or labels that do not fit the model; the message names the files."""


def pseudo_label_path(label_dir: str, name: str) -> str:
    """<labels>/<wnid>/<name>.png for the image `wnid/name.JPEG`."""
    return os.path.join(label_dir, layout.label_name(name))


def find_missing_labels(split: ImageNetSSplit, label_dir: str) -> List[str]:
    """Names of the split's images without a pseudo-label file (one directory listing per folder)."""
    listings: Dict[str, Set[str]] = {}
    missing = []
    for name in split.names:
        relative = layout.label_name(name)
        folder, file = os.path.split(relative)
        if folder not in listings:
            path = os.path.join(label_dir, folder)
            try:
                listings[folder] = set(os.listdir(path)) if os.path.isdir(path) else set()
            except OSError:
                listings[folder] = set()
        if file not in listings[folder]:
            missing.append(name)
    return missing


def check_pseudo_labels(split: ImageNetSSplit, label_dir: str) -> None:
    """Raise PseudoLabelError when the label folder is missing or any image of the split has no label."""
    if not os.path.isdir(label_dir):
        raise PseudoLabelError(f"pseudo-label folder not found: {label_dir} (expected <labels>/<wnid>/<name>.png "
                               f"for every image of {split.image_dir})")
    missing = find_missing_labels(split, label_dir)
    if missing:
        shown = ", ".join(pseudo_label_path(label_dir, n) for n in missing[:MAX_LISTED])
        more = f" (and {len(missing) - MAX_LISTED} more)" if len(missing) > MAX_LISTED else ""
        raise PseudoLabelError(f"{len(missing)} of {len(split)} images of {split.image_dir} have no pseudo label "
                               f"in {label_dir}: missing {shown}{more}")


def check_label_ids(names: Sequence[str], max_ids: Sequence[int], num_classes: int, label_dir: str) -> None:
    """Raise PseudoLabelError when a label holds a class id above K (other than the ignore id 1000)."""
    for name, top in zip(names, max_ids):
        if int(top) > num_classes:
            raise PseudoLabelError(f"{pseudo_label_path(label_dir, name)}: holds class id {int(top)} but the model "
                                   f"has K={num_classes} classes (ids 0..K, {IGNORE} = ignore); check --num-classes")


def resize_nearest(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D map, sampling at pixel centres."""
    in_h, in_w = label.shape[:2]
    if (in_h, in_w) == (height, width):
        return label
    ys = np.minimum(((np.arange(height) + 0.5) * (in_h / height)).astype(np.int64), in_h - 1)
    xs = np.minimum(((np.arange(width) + 0.5) * (in_w / width)).astype(np.int64), in_w - 1)
    return np.ascontiguousarray(label[ys[:, None], xs[None, :]])


def paired_crop_flip(image: np.ndarray, label: np.ndarray, size: int, scale: Tuple[float, float],
                     rng: np.random.Generator, ratio: Tuple[float, float] = (3 / 4, 4 / 3)
                     ) -> Tuple[np.ndarray, np.ndarray, Tuple[int, int, int, int], bool]:
    """The same random resized crop and horizontal flip of an image (bilinear) and its label (nearest).

    Returns (image size x size x 3 uint8, label size x size, crop rectangle (left, top, w, h), flipped)."""
    if image.shape[:2] != label.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and label {label.shape[:2]} differ in size")
    left, top, w, h = augment.crop_rectangle(image.shape[0], image.shape[1], scale, ratio, rng)
    image = resize_bilinear(image[top:top + h, left:left + w], size, size)
    label = resize_nearest(label[top:top + h, left:left + w], size, size)
    flipped = bool(rng.random() < 0.5)
    if flipped:
        image, label = image[:, ::-1], label[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(label), (left, top, w, h), flipped


def label_size(crop_size: int, label_scale: float) -> int:
    """Side of the training label: floor(crop_size * label_scale), as PASS's interpolate(scale_factor)."""
    return max(1, int(np.floor(crop_size * label_scale)))


def training_pair(image: np.ndarray, label: np.ndarray, crop_size: int, scale: Tuple[float, float],
                  label_scale: float, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """PASS's fine-tuning transform: (float32 3 x S x S normalised image, int32 s x s label), s = S * label_scale."""
    crop, crop_label, _, _ = paired_crop_flip(image, label, crop_size, scale, rng)
    side = label_size(crop_size, label_scale)
    target = resize_nearest(crop_label, side, side).astype(np.int32)
    return augment.normalize(crop, FINETUNE_MEAN, FINETUNE_STD), target


def max_class_id(label: np.ndarray) -> int:
    """Largest id other than the ignore id (-1 when every pixel is ignored)."""
    valid = label[label != IGNORE]
    return int(valid.max()) if valid.size else -1


class PseudoLabelDataset(EpochDataset):
    """Items: (image float32 3xSxS, label int32 sxs, name, largest class id in the label, error message or "").

    An image or label file that cannot be decoded becomes a blank image with an all-ignored label and
    its error message (check it with BadFileGuard in the main process). The labels of the whole split
    are checked for existence up front (PseudoLabelError lists the first missing ones and the count).
    `batch_size` is global: under MPI, jittor gives each rank its share of every batch.
    """

    def __init__(self, split: ImageNetSSplit, label_dir: str, crop_size: int = 224,
                 scale: Tuple[float, float] = (0.08, 1.0), label_scale: float = 0.5, seed: int = 0,
                 batch_size: int = 1, num_workers: int = 0, shuffle: bool = True, drop_last: bool = True,
                 check: bool = True):
        super().__init__(batch_size=batch_size, shuffle=False, drop_last=drop_last, num_workers=num_workers)
        if check:
            check_pseudo_labels(split, label_dir)
        self.split = split
        self.label_dir = label_dir
        self.crop_size = int(crop_size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.label_scale = float(label_scale)
        self.use_epoch_sampler(len(split), seed, shuffle)

    def load_pair(self, image_index: int) -> Tuple[np.ndarray, np.ndarray, str]:
        """(image, label resized to the image, error message or "") of one image of the split."""
        name = self.split.names[image_index]
        try:
            image = load_rgb(self.split.image_path(name))
            label = read_label_png(pseudo_label_path(self.label_dir, name))
        except (ImageFileError, LabelFileError) as failure:
            return PLACEHOLDER, np.full(PLACEHOLDER.shape[:2], IGNORE, np.int32), str(failure)
        return image, resize_nearest(label, image.shape[0], image.shape[1]), ""

    def __getitem__(self, index: int):
        epoch, image_index = self.split_index(index)
        rng = np.random.default_rng([self.sampler.seed, epoch, image_index])
        image, label, error = self.load_pair(image_index)
        top = max_class_id(label)
        crop, target = training_pair(image, label, self.crop_size, self.scale, self.label_scale, rng)
        return crop, target, self.split.names[image_index], np.int32(top), error
