"""Jittor datasets over an ImageNet-S split that never crash inside a loader worker on a bad file.

A file that cannot be decoded travels through the batch as an error string instead of raising in
the worker; `BadFileGuard` in the main process then raises a clear error naming it, or, when the
stage skips bad files, warns once and lists all skipped files at the end.
"""
import sys
from typing import Any, Callable, List, Optional, Sequence

import numpy as np
from jittor.dataset import Dataset

from uss.data.image_io import ImageFileError, load_rgb
from uss.data.split import ImageNetSSplit

# What a failed image becomes before the transform, so batches keep their shapes.
PLACEHOLDER = np.zeros((32, 32, 3), dtype=np.uint8)


class ImageDataset(Dataset):
    """Items: (transform(image), name, original (h, w) as int32[2], error message or "")."""

    def __init__(self, split: ImageNetSSplit, transform: Optional[Callable[[np.ndarray], Any]] = None,
                 batch_size: int = 1, shuffle: bool = False, num_workers: int = 0, drop_last: bool = False):
        super().__init__(batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, drop_last=drop_last)
        self.split = split
        self.transform = transform
        self.set_attrs(total_len=len(split))

    def __getitem__(self, index: int):
        name = self.split.names[index]
        try:
            image = load_rgb(self.split.image_path(name))
            error = ""
        except ImageFileError as failure:
            image, error = PLACEHOLDER, str(failure)
        size = np.array(image.shape[:2], dtype=np.int32)
        sample = self.transform(image) if self.transform is not None else image
        return sample, name, size, error


class BadFileGuard:
    """Main-process check of each batch's error strings: raise (default) or skip with a final list."""

    def __init__(self, skip_bad: bool = False, stage: str = ""):
        self.skip_bad = skip_bad
        self.stage = stage
        self.skipped: List[str] = []

    def check(self, errors: Sequence[str]) -> np.ndarray:
        """Boolean mask of the good items of a batch; raises ImageFileError on the first bad one unless skipping."""
        good = np.array([not e for e in errors], dtype=bool)
        for message in errors:
            if not message:
                continue
            if not self.skip_bad:
                raise ImageFileError(message)
            self.skipped.append(message)
            print(f"warning: {self.stage + ': ' if self.stage else ''}skipping {message}", file=sys.stderr)
        return good

    def report(self) -> None:
        """Print the list of skipped files, if any (call once at the end of the stage)."""
        if self.skipped:
            print(f"{self.stage + ': ' if self.stage else ''}{len(self.skipped)} file(s) skipped:", file=sys.stderr)
            for message in self.skipped:
                print(f"  {message}", file=sys.stderr)
