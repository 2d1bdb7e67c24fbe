"""Resizing images, point coordinates and boxes so the longest image side equals the model input."""
from typing import Tuple

import numpy as np
from PIL import Image


class ResizeLongestSide:
    """Scale so that max(h, w) == target_length, keeping the aspect ratio (numpy inputs)."""

    def __init__(self, target_length: int) -> None:
        self.target_length = target_length

    @staticmethod
    def get_preprocess_shape(old_h: int, old_w: int, long_side: int) -> Tuple[int, int]:
        """Size (h, w) after scaling the longest side to long_side, rounded half up."""
        scale = long_side * 1.0 / max(old_h, old_w)
        return int(old_h * scale + 0.5), int(old_w * scale + 0.5)

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """Resize an HxWxC uint8 image with PIL bilinear filtering (antialiased when shrinking)."""
        if image.dtype != np.uint8:
            raise TypeError(f"apply_image expects a uint8 image, got {image.dtype}")
        new_h, new_w = self.get_preprocess_shape(image.shape[0], image.shape[1], self.target_length)
        pil = Image.fromarray(np.ascontiguousarray(image))
        return np.asarray(pil.resize((new_w, new_h), Image.BILINEAR))

    def apply_coords(self, coords: np.ndarray, original_size: Tuple[int, int]) -> np.ndarray:
        """Scale (..., 2) x/y pixel coordinates from original_size (h, w) to the resized frame."""
        old_h, old_w = original_size
        new_h, new_w = self.get_preprocess_shape(old_h, old_w, self.target_length)
        out = np.array(coords, dtype=np.float64, copy=True)
        out[..., 0] = out[..., 0] * (new_w / old_w)
        out[..., 1] = out[..., 1] * (new_h / old_h)
        return out

    def apply_boxes(self, boxes: np.ndarray, original_size: Tuple[int, int]) -> np.ndarray:
        """Scale (B, 4) xyxy boxes from original_size (h, w) to the resized frame."""
        corners = self.apply_coords(np.asarray(boxes).reshape(-1, 2, 2), original_size)
        return corners.reshape(-1, 4)
