"""The model-free reference rows: the colour-only baseline labels each image's given foreground with the id of its
foreground hue's k-means cluster (fitted on the train foregrounds), and leaves everything else background."""
import os

import numpy as np
from PIL import Image

from uss.baselines import main as baselines_main
from uss.data import layout
from uss.data.label_png import IGNORE, read_label_png, write_label_png
from uss.data.toy import generate as make_toy

HUES = {1: (220, 40, 40), 2: (40, 60, 220)}  # class 1 red objects, class 2 blue ones


def _repaint(root: str, split: str, foreground_dir: str, rng: np.random.Generator) -> None:
    """Overwrite every image of the split with a grey scene holding one square of its class's colour, and write
    that square (with an ignore border) as the image's foreground label under `foreground_dir`."""
    categories = layout.load_categories(root)
    for name in layout.list_images(root, split):
        cls = layout.class_of(name, categories)
        image = np.full((64, 64, 3), 128, np.uint8) + rng.integers(0, 20, (64, 64, 3)).astype(np.uint8)
        y, x, side = *rng.integers(0, 30, 2), int(rng.integers(16, 32))
        image[y:y + side, x:x + side] = np.clip(np.array(HUES[cls]) + rng.integers(-25, 25, 3), 0, 255)
        Image.fromarray(image).save(os.path.join(layout.image_dir(root, split), name), format="JPEG", quality=95)
        label = np.zeros((64, 64), np.int32)
        label[y:y + side, x:x + side] = 5  # any non-background id marks the foreground
        label[y, x:x + side] = IGNORE
        write_label_png(os.path.join(foreground_dir, layout.label_name(name)), label)


def test_colour_only_labels_the_given_foreground_by_its_hue(tmp_path):
    root = str(tmp_path / "toy")
    make_toy(root, classes=2, size=64, train_per_class=6, val_per_class=4, test_per_class=1, progress=False)
    rng = np.random.default_rng(0)
    train_fg, val_fg, out = (str(tmp_path / name) for name in ("train_fg", "val_fg", "out"))
    _repaint(root, "train", train_fg, rng)
    _repaint(root, "validation", val_fg, rng)
    baselines_main(["--data", root, "--split", "validation", "--foreground", val_fg, "--train-foreground", train_fg,
                    "--out", out])
    categories = layout.load_categories(root)
    cluster_of_class = {}
    for name in layout.list_images(root, "validation"):
        given = read_label_png(os.path.join(val_fg, layout.label_name(name)))
        predicted = read_label_png(os.path.join(out, layout.label_name(name)))
        foreground = (given != 0) & (given != IGNORE)
        assert (predicted[~foreground] == 0).all()
        ids = np.unique(predicted[foreground])
        assert len(ids) == 1 and 1 <= ids[0] <= 2, ids  # one cluster id for the whole foreground
        cluster_of_class.setdefault(layout.class_of(name, categories), set()).add(int(ids[0]))
    # Red and blue objects: each class gets one cluster, and the two clusters differ.
    assert all(len(ids) == 1 for ids in cluster_of_class.values()), cluster_of_class
    assert cluster_of_class[1] != cluster_of_class[2]
