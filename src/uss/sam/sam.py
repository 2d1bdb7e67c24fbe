"""The SAM model: image encoder + prompt encoder + mask decoder, with input normalisation and
padding and mask post-processing back to the original image size."""
from functools import lru_cache
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import jittor as jt
from jittor import nn

from uss.data.imageops import bilinear_matrix
from uss.sam.image_encoder import ImageEncoderViT
from uss.sam.mask_decoder import MaskDecoder
from uss.sam.prompt_encoder import PromptEncoder

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


@lru_cache(maxsize=64)
def postprocess_matrix(low_len: int, img_size: int, input_len: int, orig_len: int) -> np.ndarray:
    """(orig_len, low_len) float32 map: upscale to img_size, keep the first input_len, resize to orig_len."""
    up = bilinear_matrix(low_len, img_size)[:input_len]
    down = bilinear_matrix(input_len, orig_len)
    return (down @ up).astype(np.float32)


class Sam(nn.Module):
    """Segment Anything model predicting masks from an image and prompts."""

    mask_threshold: float = 0.0
    image_format: str = "RGB"

    def __init__(
        self,
        image_encoder: ImageEncoderViT,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        pixel_mean: Sequence[float] = PIXEL_MEAN,
        pixel_std: Sequence[float] = PIXEL_STD,
    ) -> None:
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        # Underscore names keep these constants out of the state dict, as in the official model.
        self._pixel_mean = np.asarray(pixel_mean, dtype=np.float32).reshape(-1, 1, 1)
        self._pixel_std = np.asarray(pixel_std, dtype=np.float32).reshape(-1, 1, 1)

    @property
    def img_size(self) -> int:
        """Side of the square input the image encoder expects."""
        return self.image_encoder.img_size

    def preprocess(self, x: jt.Var) -> jt.Var:
        """Normalise (B, 3, h, w) RGB pixels and zero-pad bottom/right to img_size."""
        x = (x.float32() - jt.array(self._pixel_mean)) / jt.array(self._pixel_std)
        b, c, h, w = x.shape
        size = self.img_size
        if w < size:
            x = jt.concat([x, jt.zeros((b, c, h, size - w), dtype="float32")], dim=3)
        if h < size:
            x = jt.concat([x, jt.zeros((b, c, size - h, size), dtype="float32")], dim=2)
        return x

    def postprocess_masks(
        self, masks: jt.Var, input_size: Tuple[int, int], original_size: Tuple[int, int]
    ) -> jt.Var:
        """Resize low-res mask logits (..., h, w) to the original image size, dropping padding.

        Equivalent to bilinear upscaling to img_size, cropping to input_size and bilinear resizing
        to original_size, but done as two small matrix products without the img_size intermediate.
        """
        low_h, low_w = masks.shape[-2], masks.shape[-1]
        rows = jt.array(postprocess_matrix(low_h, self.img_size, int(input_size[0]), int(original_size[0])))
        cols = jt.array(postprocess_matrix(low_w, self.img_size, int(input_size[1]), int(original_size[1])))
        lead = tuple(masks.shape[:-2])
        flat = masks.reshape((-1, low_h, low_w))
        out = jt.matmul(jt.matmul(rows.unsqueeze(0), flat), cols.transpose().unsqueeze(0))
        return out.reshape(lead + (int(original_size[0]), int(original_size[1])))

    def execute(self, batched_input: List[Dict[str, Any]], multimask_output: bool) -> List[Dict[str, jt.Var]]:
        """End-to-end prediction for a list of already resized images with their prompts."""
        with jt.no_grad():
            images = jt.concat([self.preprocess(rec["image"].unsqueeze(0)) for rec in batched_input], dim=0)
            embeddings = self.image_encoder(images)
            outputs = []
            for idx, rec in enumerate(batched_input):
                points = (rec["point_coords"], rec["point_labels"]) if "point_coords" in rec else None
                sparse, dense = self.prompt_encoder(points, rec.get("boxes"), rec.get("mask_inputs"))
                low_res, iou = self.mask_decoder(
                    embeddings[idx : idx + 1], self.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output
                )
                masks = self.postprocess_masks(low_res, tuple(rec["image"].shape[-2:]), rec["original_size"])
                outputs.append(
                    {"masks": masks > self.mask_threshold, "iou_predictions": iou, "low_res_logits": low_res}
                )
        return outputs
