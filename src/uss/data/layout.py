"""The ImageNet-S folder layout.

    <root>/train/<wnid>/<name>.JPEG                    (no masks)
    <root>/<split>/<wnid>/<name>.JPEG                  (split: validation, test, testA, testB, ...)
    <root>/<split>-segmentation/<wnid>/<name>.png      (ids = R + 256 * G; 0 background, 1000 ignore)
    <root>/categories.txt                              (optional: one wnid a line; line i is class i + 1)
    <root>/names/<split>.txt                           (optional: one relative image path a line)

Without categories.txt the class order is the sorted list of train/ subfolders (as ImageNet-S's
category files are sorted wnids); without a name list a split is the sorted walk of its folder.

A plain image folder (none of the split folders below, no categories.txt; images at any depth, no labels) is a
dataset too: a split name that is not one of its subfolders (train, all, ...) means all of its images, none has
ground truth, and the number of classes is given by the caller (--num-classes; CLASSES=N for the train_*.sh
scripts).
"""
import os
import sys
from typing import List, Optional

from uss.errors import InputError

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff")
HOW_TO_SET = ("pass --data <folder with train/ validation/ ...> (or set DATA=... for the train_*.sh scripts); "
              "the demo dataset is made by: python -m uss.data.toy --out data/toy")


SPLIT_FOLDERS = ("train", "validation", "test", "testA", "testB")
PLAIN_FOLDER_CLASSES = ("a plain image folder names no classes: pass --num-classes N (CLASSES=N for the "
                        "train_*.sh scripts)")


class DatasetNotFoundError(InputError, FileNotFoundError):
    """A dataset folder that is missing or empty; the message says what was expected and how to set it."""


def is_plain_folder(root: str) -> bool:
    """True for a folder of images without the ImageNet-S layout (no split folder, no categories.txt)."""
    return (os.path.isdir(root) and not os.path.isfile(os.path.join(root, "categories.txt"))
            and not any(os.path.isdir(os.path.join(root, split)) for split in SPLIT_FOLDERS))


def reads_whole_folder(root: str, split: str) -> bool:
    """True when `split` means every image of a plain folder: it names no subfolder of it (so a folder with only
    custom split folders, or a split named after one subfolder of your photos, still reads that subfolder)."""
    return not os.path.isdir(os.path.join(root, split)) and is_plain_folder(root)


def image_dir(root: str, split: str) -> str:
    """The folder of a split's images: <root>/<split>, or the whole folder for a plain image folder."""
    return root if reads_whole_folder(root, split) else os.path.join(root, split)


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
    if reads_whole_folder(root, split):
        return plain_folder_images(root)
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


def plain_folder_images(root: str) -> List[str]:
    """Every image under a plain folder (sorted relative paths, hidden files and folders skipped). Two images whose
    outputs would share a name (photo.jpg and photo.png) keep the first; the other is reported and skipped."""
    names, kept = [name for name in relative_files(root) if is_image_file(name)], {}
    for name in names:
        if label_name(name) in kept:
            print(f"warning: {os.path.join(root, name)}: skipped, its label file would overwrite that of "
                  f"{kept[label_name(name)]}", file=sys.stderr)
        else:
            kept[label_name(name)] = name
    if not kept:
        raise DatasetNotFoundError(f"no images found under {root} (looked for {', '.join(IMAGE_EXTENSIONS)}); "
                                   f"{HOW_TO_SET}")
    return sorted(kept.values())


def load_categories(root: str) -> List[str]:
    """Class names (wnids) in class-id order: entry i is class id i + 1."""
    listed = os.path.join(root, "categories.txt")
    if os.path.isfile(listed):
        with open(listed) as handle:
            categories = [line.strip().split()[0] for line in handle if line.strip()]
        if categories:
            return categories
        raise DatasetNotFoundError(f"{listed}: category list is empty")
    if is_plain_folder(root):
        raise DatasetNotFoundError(f"{root}: {PLAIN_FOLDER_CLASSES}")
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
