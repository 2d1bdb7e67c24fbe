"""Reference predictions that need no model (the all-background row of the results table)."""
import os

import numpy as np
from tqdm import tqdm

from uss import options
from uss.data import layout
from uss.data.image_io import image_size
from uss.data.label_png import write_label_png
from uss.data.split import ImageNetSSplit


def write_constant_predictions(split: ImageNetSSplit, out_dir: str, value: int = 0) -> int:
    """Write one PNG per image of `split`, at its stored size, filled with `value`; returns the count."""
    for name in tqdm(split.names, desc=f"constant prediction ({split.split})", unit="img"):
        height, width = image_size(split.image_path(name))
        write_label_png(os.path.join(out_dir, layout.label_name(name)), np.full((height, width), value, np.int32))
    return len(split)


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Write constant (e.g. all-background) predictions for a split.",
                                     parents=[options.dataset("validation")])
    parser.add_argument("--out", required=True, help="prediction folder to write")
    parser.add_argument("--value", type=int, default=0, help="class id to fill with (0 = background)")
    args = parser.parse_args(argv)
    count = write_constant_predictions(ImageNetSSplit(args.data, args.split), args.out, args.value)
    print(f"wrote {count} predictions to {args.out}")


if __name__ == "__main__":
    from uss.errors import run_cli

    run_cli(main)
