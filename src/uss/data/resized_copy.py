"""A scaled-down copy of an image folder, for training on a CPU (PRESET=small).

``python -m uss.data.resized_copy --data PHOTOS --out COPY --short-side 96`` writes every readable image of PHOTOS
(same relative path, same file name and format) scaled so its short side is at most 96 px. A CPU preset trains on
64-px crops: decoding a multi-megapixel photo for each of them would cost more than the network does. Files that
cannot be read are reported by name and left out, so later stages never meet them; test.py still predicts the
originals. Each file is written atomically and a rerun copies only what is missing.
"""
import argparse
import os
import sys
from typing import List, Optional

from PIL import Image
from tqdm import tqdm

from uss.atomic import atomic_open
from uss.data import layout
from uss.data.image_io import ImageFileError, load_rgb
from uss.errors import run_cli

FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP", ".tif": "TIFF",
           ".tiff": "TIFF"}


def copy_scaled(source: str, target: str, short_side: int) -> None:
    """Write `source` scaled down to `short_side` (never up) as `target`, in the format its extension names."""
    image = Image.fromarray(load_rgb(source))
    scale = short_side / min(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.BILINEAR)
    file_format = FORMATS[os.path.splitext(target)[1].lower()]
    extra = {"quality": 95} if file_format in ("JPEG", "WEBP") else {}
    with atomic_open(target, "wb") as handle:  # makes the folder
        image.save(handle, format=file_format, **extra)


def make_copy(data: str, out: str, short_side: int) -> List[str]:
    """Copy every image of `data` (a plain folder or one split of it) into `out`; returns the messages of the
    files that could not be read."""
    names = layout.plain_folder_images(data)
    failed = []
    for name in tqdm(names, desc=f"scaled copy (short side {short_side}) -> {out}", unit="img"):
        target = os.path.join(out, name)
        if os.path.isfile(target):
            continue
        try:
            copy_scaled(os.path.join(data, name), target, short_side)
        except ImageFileError as error:
            failed.append(str(error))
            tqdm.write(f"warning: skipping {error}", file=sys.stderr)
    return failed


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="plain image folder (images at any depth)")
    parser.add_argument("--out", required=True, help="folder for the scaled copy")
    parser.add_argument("--short-side", type=int, default=96, help="largest short side of the copies (default 96)")
    args = parser.parse_args(argv)
    if not layout.is_plain_folder(args.data):
        raise layout.DatasetNotFoundError(f"{args.data}: not a plain image folder (it has split folders or "
                                          f"categories.txt, or does not exist)")
    failed = make_copy(args.data, args.out, args.short_side)
    print(f"scaled copy: {len(layout.plain_folder_images(args.out))} images in {args.out}"
          + (f"; {len(failed)} unreadable file(s) left out:" if failed else ""))
    for message in failed:
        print(f"  {message}")
    return 0


if __name__ == "__main__":
    run_cli(main)
