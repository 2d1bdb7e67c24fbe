"""ImageNet-S label PNG codec: class id = R + 256 * G; 0 is background, 1000 is ignored."""
import io
import os

import numpy as np
from PIL import Image

from uss.atomic import atomic_write_bytes
from uss.errors import InputError

BACKGROUND = 0
IGNORE = 1000
MAX_ID = 256 * 256 - 1


class LabelFileError(InputError, ValueError):
    """A label PNG that cannot be read or decoded; the message names the file."""


def encode_label(label: np.ndarray) -> np.ndarray:
    """HxW integer ids -> HxWx3 uint8 RGB with R = id % 256, G = id // 256, B = 0."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label map must be 2-D, got shape {label.shape}")
    if label.size and (label.min() < 0 or label.max() > MAX_ID):
        raise ValueError(f"label ids must lie in [0, {MAX_ID}], got [{label.min()}, {label.max()}]")
    ids = label.astype(np.int64)
    rgb = np.zeros(label.shape + (3,), dtype=np.uint8)
    rgb[..., 0] = ids % 256
    rgb[..., 1] = ids // 256
    return rgb


def decode_label(pixels: np.ndarray) -> np.ndarray:
    """RGB(A) -> R + 256 * G; a single-channel array is taken as ids directly. Returns int32."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        return pixels.astype(np.int32)
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        return pixels[..., 0].astype(np.int32) + 256 * pixels[..., 1].astype(np.int32)
    raise ValueError(f"cannot decode a label from an array of shape {pixels.shape}")


def label_png_bytes(label: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(encode_label(label), mode="RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def write_label_png(path: str, label: np.ndarray) -> None:
    """Write a label map as an ImageNet-S PNG, atomically."""
    atomic_write_bytes(path, label_png_bytes(label))


def read_label_png(path: str) -> np.ndarray:
    """Read an ImageNet-S label PNG as HxW int32 ids; LabelFileError names the file on failure."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGB", "RGBA"):
                pixels = np.asarray(image)
            elif image.mode in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                # Single-channel label files (palette index or grey level) carry the id directly.
                pixels = np.asarray(image if image.mode in ("L", "P") else image.convert("I"))
            else:
                pixels = np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise LabelFileError(f"{path}: label file not found") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise LabelFileError(f"{path}: cannot decode label PNG ({error})") from None
    return decode_label(pixels)


def label_png_size(path: str) -> tuple:
    """(height, width) of a label PNG without decoding its pixels."""
    try:
        with Image.open(path) as image:
            return image.size[1], image.size[0]
    except (OSError, SyntaxError, ValueError) as error:
        raise LabelFileError(f"{path}: cannot read label PNG header ({error})") from None


def is_complete_label_png(path: str, size: tuple) -> bool:
    """True when `path` exists, decodes fully and is (height, width) = size: resumable stages skip it."""
    if not os.path.isfile(path):
        return False
    try:
        return read_label_png(path).shape == tuple(size)
    except LabelFileError:
        return False
