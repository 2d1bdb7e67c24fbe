"""The ImageNet-S folder layout.

    <root>/train/<wnid>/<name>.JPEG                    (no masks)
    <root>/<split>/<wnid>/<name>.JPEG                  (split: validation, test, testA, testB, ...)
    <root>/<split>-segmentation/<wnid>/<name>.png      (ids = R + 256 * G; 0 background, 1000 ignore)
    <root>/categories.txt                              (optional: one wnid a line; line i is class i + 1)
    <root>/names/<split>.txt                           (optional: one relative image path a line)

Without categories.txt the class order is the sorted list of train/ subfolders (as ImageNet-S's
category files are sorted wnids); without a name list a split is the sorted walk of its folder.
"""
import os
from typing import List, Optional

from uss.errors import InputError

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff")
HOW_TO_SET = ("pass --data <folder with train/ validation/ ...> (or set DATA=... for the train_*.sh scripts); "
              "the demo dataset is made by: python -m uss.data.toy --out data/toy")


class DatasetNotFoundError(InputError, FileNotFoundError):
    """A dataset folder that is missing or empty; the message says what was expected and how to set it."""


def image_dir(root: str, split: str) -> str:
    return os.path.join(root, split)


def segmentation_dir(root: str, split: str) -> str:
    return os.path.join(root, f"{split}-segmentation")


def label_name(image_name: str) -> str:
    """Relative image path -> relative label/prediction path (same folders, .png)."""
    return os.path.splitext(image_name)[0] + ".png"


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def relative_files(root: str) -> List[str]:
    """Sorted relative paths (with '/') of every file under root, hidden folders skipped."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        relative = os.path.relpath(directory, root)
        found.extend(name if relative == "." else os.path.join(relative, name).replace(os.sep, "/") for name in files)
    return sorted(found)


def require_dir(path: str, what: str) -> None:
    if not os.path.isdir(path):
        raise DatasetNotFoundError(f"{what} not found: expected folder {path}; {HOW_TO_SET}")


def list_images(root: str, split: str) -> List[str]:
    """Sorted relative paths (``wnid/name.JPEG``) of a split's images; one-line error when missing or empty."""
    folder = image_dir(root, split)
    require_dir(folder, f"ImageNet-S split '{split}'")
    name_list = os.path.join(root, "names", f"{split}.txt")
    if os.path.isfile(name_list):
        with open(name_list) as handle:
            names = [line.strip().split()[0] for line in handle if line.strip()]
    else:
        names = []
        for directory, subdirs, files in os.walk(folder):
            subdirs.sort()
            relative = os.path.relpath(directory, folder)
            for file in files:
                if is_image_file(file):
                    names.append(file if relative == "." else os.path.join(relative, file).replace(os.sep, "/"))
    names.sort()
    if not names:
        raise DatasetNotFoundError(f"ImageNet-S split '{split}' is empty: no images found under {folder}; {HOW_TO_SET}")
    return names


def load_categories(root: str) -> List[str]:
    """Class names (wnids) in class-id order: entry i is class id i + 1."""
    listed = os.path.join(root, "categories.txt")
    if os.path.isfile(listed):
        with open(listed) as handle:
            categories = [line.strip().split()[0] for line in handle if line.strip()]
        if categories:
            return categories
        raise DatasetNotFoundError(f"{listed}: category list is empty")
    train = image_dir(root, "train")
    require_dir(train, "ImageNet-S train split (needed for the class list when categories.txt is absent)")
    categories = sorted(d for d in os.listdir(train) if os.path.isdir(os.path.join(train, d)))
    if not categories:
        raise DatasetNotFoundError(f"no class folders under {train}; {HOW_TO_SET}")
    return categories


def class_of(image_name: str, categories: List[str]) -> Optional[int]:
    """Class id (1-based) carried by the image's folder name, or None when the folder is not a class."""
    folder = image_name.replace(os.sep, "/").split("/")[0]
    try:
        return categories.index(folder) + 1
    except ValueError:
        return None
