"""Robust image loading: every file becomes HxWx3 uint8 RGB the same way, or a clear error naming it.

Conversions: grayscale and palette images are expanded to RGB; CMYK is converted by PIL; 16- and
32-bit images are scaled to 8 bits; transparent images are composited over white. EXIF
orientation is deliberately NOT applied: ImageNet-S masks and the benchmark's expected
prediction size follow the stored pixel grid, so rotating would misalign predictions.
"""
import threading
import warnings
from typing import Optional, Tuple

import numpy as np
from PIL import Image, ImageFile

from uss.errors import InputError

# A decompression-bomb guard that still admits any real photograph (ImageNet's largest is < 100 MP).
Image.MAX_IMAGE_PIXELS = 400_000_000


class ImageFileError(InputError, ValueError):
    """An image file that is missing, truncated or not decodable; the message names the file."""


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image.convert("I") if mode.startswith("I;16") else image).astype(np.float64)
        if mode.startswith("I;16"):
            values = values / 257.0
        else:
            low, high = float(values.min()), float(values.max())
            values = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        gray = np.clip(np.round(values), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=2), mode="RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(path: str) -> np.ndarray:
    """Load an image file as an HxWx3 uint8 RGB array; ImageFileError names the file on failure."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's EXIF/ICC chatter is not actionable here
            with Image.open(path) as image:
                image.load()
                rgb = _to_rgb(image)
                array = np.asarray(rgb, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageFileError(f"{path}: image file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageFileError(f"{path}: cannot decode image ({error})") from None
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageFileError(f"{path}: decoded to an unusable array of shape {array.shape}")
    return np.ascontiguousarray(array)


_TRUNCATED_SWITCH = threading.Lock()


def load_rgb_best_effort(path: str) -> Tuple[np.ndarray, Optional[str]]:
    """(image, None) like load_rgb; a truncated file is decoded as far as its data goes (the rest grey) and comes
    with a warning naming it. Any other failure raises ImageFileError as load_rgb does.

    PIL's switch for truncated files is process-wide, so every decode through here holds one lock: no strict
    decode in another thread can pass a truncated file unnoticed while the switch is on."""
    with _TRUNCATED_SWITCH:
        try:
            return load_rgb(path), None
        except ImageFileError as error:
            if "truncated" not in str(error) and "broken data stream" not in str(error):
                raise
            ImageFile.LOAD_TRUNCATED_IMAGES = True
            try:
                image = load_rgb(path)
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = False
            return image, f"{path}: truncated image, decoded as far as its data goes"


def image_size(path: str) -> tuple:
    """(height, width) of an image file as stored, reading only its header."""
    try:
        with Image.open(path) as image:
            return image.size[1], image.size[0]
    except FileNotFoundError:
        raise ImageFileError(f"{path}: image file not found") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageFileError(f"{path}: cannot read image header ({error})") from None
