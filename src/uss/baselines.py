"""Reference predictions that need no trained model: the all-background row of the results table, and the
colour-only row (how far colour alone goes): each image's foreground, taken from the per-pixel pseudo labels, gets
one id, its hue histogram's nearest k-means centroid, the centroids fitted on the train images' foreground hue
histograms (the train pseudo labels' foreground). It is PASS's labelling with a hue histogram in place of the
backbone's attention-pooled embedding, so the two rows differ only in the representation."""
import os
from typing import Optional

import numpy as np
from tqdm import tqdm

from uss import options
from uss.data import layout
from uss.data.image_io import image_size, load_rgb
from uss.data.label_png import BACKGROUND, IGNORE, read_label_png, write_label_png
from uss.data.split import ImageNetSSplit
from uss.errors import InputError


def write_constant_predictions(split: ImageNetSSplit, out_dir: str, value: int = 0) -> int:
    """Write one PNG per image of `split`, at its stored size, filled with `value`; returns the count."""
    for name in tqdm(split.names, desc=f"constant prediction ({split.split})", unit="img"):
        height, width = image_size(split.image_path(name))
        write_label_png(os.path.join(out_dir, layout.label_name(name)), np.full((height, width), value, np.int32))
    return len(split)


def _foreground(labels: str, name: str, shape: tuple) -> np.ndarray:
    """The foreground (not background, not ignore) of the label PNG of image `name` under `labels`, at `shape`."""
    path = os.path.join(labels, layout.label_name(name))
    if not os.path.isfile(path):
        raise InputError(f"{path}: no label file for image {name} (make the per-pixel pseudo labels first)")
    label = read_label_png(path)
    if label.shape != shape:
        import cv2

        label = cv2.resize(label.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return (label != BACKGROUND) & (label != IGNORE)


def foreground_hue_histograms(split: ImageNetSSplit, labels: str, keep_masks: bool = True) -> tuple:
    """(N x bins hue histograms of each image's foreground pixels, the foreground masks as a list when
    `keep_masks`, else an empty list)."""
    from uss.evaluation.feature_nmi import hue_histograms

    rows, masks = [], []
    for name in tqdm(split.names, desc=f"colour-only: foreground hue ({split.split})", unit="img"):
        image = load_rgb(split.image_path(name))
        mask = _foreground(labels, name, image.shape[:2])
        pixels = image[mask] if mask.any() else image.reshape(-1, 3)  # an empty foreground: the whole image
        rows.append(hue_histograms([pixels[None]])[0])
        if keep_masks:
            masks.append(mask)
    return np.stack(rows), masks


def write_colour_only_predictions(split: ImageNetSSplit, foreground: str, train: ImageNetSSplit,
                                  train_foreground: str, k: int, out_dir: str, seed: int = 31) -> int:
    """The colour-only baseline (module docstring): k-means (k clusters, seeded) on the train images' foreground
    hue histograms, then each image of `split` labelled inside its foreground; returns the count."""
    from uss.clustering import kmeans

    fit, _ = foreground_hue_histograms(train, train_foreground, keep_masks=False)
    centroids, _, _ = kmeans(fit, k, restarts=10, iterations=50, seed=seed)
    histograms, masks = foreground_hue_histograms(split, foreground)
    nearest = ((histograms[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    for name, mask, cluster in zip(split.names, masks, nearest):
        write_label_png(os.path.join(out_dir, layout.label_name(name)), np.where(mask, int(cluster) + 1, 0))
    return len(split)


def main(argv: Optional[list] = None) -> None:
    """Command line: constant predictions, or with --foreground the colour-only baseline."""
    import argparse

    parser = argparse.ArgumentParser(description="Predictions that need no trained model: a constant (e.g. "
                                     "all-background), or with --foreground the colour-only baseline.",
                                     parents=[options.dataset("validation")])
    parser.add_argument("--out", required=True, help="prediction folder to write")
    parser.add_argument("--value", type=int, default=0, help="class id to fill with (0 = background)")
    colour = parser.add_argument_group("colour-only baseline")
    colour.add_argument("--foreground", metavar="DIR", help="label PNGs of --split whose non-background pixels are "
                        "the foreground (the per-pixel pseudo labels)")
    colour.add_argument("--train-foreground", metavar="DIR", help="the same for the train split (fits the centroids)")
    colour.add_argument("--clusters", type=int, default=None, help="k (default: the number of categories)")
    colour.add_argument("--seed", type=int, default=31)
    args = parser.parse_args(argv)
    split = ImageNetSSplit(args.data, args.split)
    if args.foreground:
        if not args.train_foreground:
            parser.error("--foreground needs --train-foreground")
        k = args.clusters or len(layout.load_categories(args.data))
        count = write_colour_only_predictions(split, args.foreground, ImageNetSSplit(args.data, "train"),
                                              args.train_foreground, k, args.out, args.seed)
    else:
        count = write_constant_predictions(split, args.out, args.value)
    print(f"wrote {count} predictions to {args.out}")


if __name__ == "__main__":
    from uss.errors import run_cli

    run_cli(main)
