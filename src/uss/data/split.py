"""One split of an ImageNet-S style dataset: its image names, paths, images and (if any) masks."""
import os
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from uss.data import layout
from uss.data.image_io import load_rgb
from uss.data.label_png import read_label_png


class LoadedImage(NamedTuple):
    image: np.ndarray        # HxWx3 uint8 RGB
    name: str                # relative path, e.g. n01443537/ILSVRC2012_val_00000001.JPEG
    size: Tuple[int, int]    # original (height, width)


class ImageNetSSplit:
    """Names and loading for ``<root>/<split>`` (train, validation, test, testA, testB or any folder), or for every
    image of a plain image folder whatever the split's name (`uss.data.layout`)."""

    def __init__(self, root: str, split: str, names: Optional[Sequence[str]] = None):
        self.root = root
        self.split = split
        self.names: List[str] = list(names) if names is not None else layout.list_images(root, split)
        self._image_dir = layout.image_dir(root, split)  # once: a plain folder is recognised by looking at it

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"ImageNetSSplit({self.root!r}, {self.split!r}, {len(self)} images)"

    @property
    def image_dir(self) -> str:
        return self._image_dir

    @property
    def segmentation_dir(self) -> str:
        return layout.segmentation_dir(self.root, self.split)

    @property
    def has_segmentation(self) -> bool:
        return os.path.isdir(self.segmentation_dir)

    def image_path(self, name: str) -> str:
        return os.path.join(self.image_dir, name)

    def label_path(self, name: str) -> str:
        return os.path.join(self.segmentation_dir, layout.label_name(name))

    def load(self, index: int) -> LoadedImage:
        """Load image `index` as RGB; raises ImageFileError naming the file when it cannot be decoded."""
        name = self.names[index]
        image = load_rgb(self.image_path(name))
        return LoadedImage(image, name, (image.shape[0], image.shape[1]))

    def load_label(self, index: int) -> np.ndarray:
        """Ground-truth ids (HxW int32) of image `index`; LabelFileError names a missing or bad file."""
        return read_label_png(self.label_path(self.names[index]))

    def shard(self, index: int, count: int) -> "ImageNetSSplit":
        """The `index`-th of `count` disjoint, interleaved parts (for MPI ranks or --shard i/n)."""
        if not 0 <= index < count:
            raise ValueError(f"shard index {index} not in [0, {count})")
        return ImageNetSSplit(self.root, self.split, self.names[index::count])
