"""PASS inference of a fine-tuned segmentation model, one image at a time.

Per image (as PASS's inference.py): resize the short side to `short_side` (PIL bilinear), normalise, forward,
upsample the logits bilinearly to the image size, argmax. For an image of more than `max_pixels` (10^6) pixels
the logits are upsampled to PASS's size (1000, int(1000 * W / H)) (its inference.py --max_res 1000 rule: the
height becomes 1000 whatever the aspect) and the label map is then enlarged to the original size by nearest
neighbour (torch's mode="nearest"); predictions always have the image's size.
"""
import math
from typing import Optional, Tuple

import jittor as jt
import numpy as np

from uss import writer
from uss.data.augment import network_input
from uss.data.imageops import bilinear_matrix
from uss.data.split import ImageNetSSplit
from uss.models.segmentation import SegmentationModel

MAX_PIXELS = 1000 * 1000
CHUNK_ELEMENTS = 1 << 26  # logits upsampled per chunk of output rows: at most 256 MB of float32


def inference_size(height: int, width: int, max_pixels: Optional[int] = MAX_PIXELS) -> Tuple[int, int]:
    """(h, w) at which logits are upsampled: the image size, or for an image of more than max_pixels pixels PASS's
    inference.py size (max_res, int(max_res * W / H)) with max_res = sqrt(max_pixels) (1000 for 10^6)."""
    if not max_pixels or height * width <= max_pixels:
        return height, width
    max_res = math.isqrt(int(max_pixels))
    return max_res, max(1, int(max_res * width / height))


def enlarge_nearest(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """A working-size label map brought to height x width as PASS does (torch interpolate mode="nearest":
    source index floor(i * in / out))."""
    in_h, in_w = label.shape[:2]
    if (in_h, in_w) == (height, width):
        return label
    ys = (np.arange(height) * in_h) // height
    xs = (np.arange(width) * in_w) // width
    return np.ascontiguousarray(label[ys[:, None], xs[None, :]])


def upsample_argmax(logits: jt.Var, height: int, width: int, chunk_elements: int = CHUNK_ELEMENTS) -> np.ndarray:
    """argmax over classes of the logits (C x h x w) bilinearly upsampled to height x width (int32 map).

    Separable bilinear upsampling as two matrix products, done for a chunk of output rows at a time so
    memory stays bounded whatever the number of classes and the image size."""
    if logits.ndim == 4:
        logits = logits[0]
    channels, h, w = logits.shape
    # Source positions in float64, weights float32: the arithmetic these predictions were made with.
    across = jt.array(bilinear_matrix(w, width, np.float64, np.float32).T)  # w x W
    down = bilinear_matrix(h, height, np.float64, np.float32)  # H x h
    rows_first = jt.matmul(logits.reshape(channels * h, w), across)  # (C*h) x W
    rows_first = rows_first.reshape(channels, h, width).transpose(1, 0, 2).reshape(h, channels * width)
    out = np.empty((height, width), dtype=np.int32)
    step = max(1, chunk_elements // (channels * width))
    for start in range(0, height, step):
        stop = min(height, start + step)
        part = jt.matmul(jt.array(down[start:stop]), rows_first).reshape(stop - start, channels, width)
        out[start:stop] = jt.argmax(part, dim=1)[0].numpy()
    return out


def predict_working_label(model: SegmentationModel, image_input: jt.Var, height: int, width: int,
                          max_pixels: Optional[int] = MAX_PIXELS) -> Tuple[jt.Var, np.ndarray]:
    """(logits 1 x C x h x w, label map at the working size `inference_size(height, width, max_pixels)`) of one
    normalised network input (1 x 3 x h x w) of an image of height x width."""
    with jt.no_grad():
        logits = model(image_input)
        return logits, upsample_argmax(logits, *inference_size(height, width, max_pixels))


def predict_label(model: SegmentationModel, image_input: jt.Var, height: int, width: int,
                  max_pixels: Optional[int] = MAX_PIXELS) -> np.ndarray:
    """Label map (height x width int32) of one normalised network input (1 x 3 x h x w)."""
    _, label = predict_working_label(model, image_input, height, width, max_pixels)
    return enlarge_nearest(label, height, width)


def predict_split(model: SegmentationModel, split: ImageNetSSplit, out_dir: str, short_side: int = 256,
                  max_pixels: Optional[int] = MAX_PIXELS, redo: bool = False, workers: int = 2,
                  progress: bool = True, part: writer.Part = writer.Part()) -> writer.WriteSummary:
    """Write `<out_dir>/<wnid>/<name>.png` for every image of this process's part of the split (uss.writer);
    images are decoded and resized by the writer's threads."""
    model.eval()

    def prepare(image: np.ndarray) -> Tuple[np.ndarray, Tuple[int, int]]:
        return network_input(image, short_side), image.shape[:2]

    def label(item: Tuple[np.ndarray, Tuple[int, int]], name: str) -> np.ndarray:
        sample, (height, width) = item
        return predict_label(model, jt.array(sample[None]), height, width, max_pixels)

    return writer.write_split(split, out_dir, label, part, f"inference {split.split}", workers, prepare,
                              redo=redo, progress=progress)
