"""SamPredictor: embed an image once, then predict masks for many prompts."""
from typing import Optional, Tuple

import numpy as np
import jittor as jt

from uss.sam.sam import Sam
from uss.sam.transforms import ResizeLongestSide


class SamPredictor:
    """Holds one image embedding and answers point / box / mask prompts against it."""

    def __init__(self, sam_model: Sam) -> None:
        self.model = sam_model
        self.model.eval()
        self.transform = ResizeLongestSide(sam_model.img_size)
        self.reset_image()

    def reset_image(self) -> None:
        """Forget the current image and its embedding."""
        self.is_image_set = False
        self.features: Optional[jt.Var] = None
        self.original_size: Optional[Tuple[int, int]] = None
        self.input_size: Optional[Tuple[int, int]] = None

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """Compute the embedding of an HxWx3 uint8 image (RGB unless image_format='BGR')."""
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
        if image_format != self.model.image_format:
            image = image[..., ::-1]
        resized = self.transform.apply_image(np.ascontiguousarray(image))
        chw = np.ascontiguousarray(resized.transpose(2, 0, 1)[None]).astype(np.float32)
        self.set_jittor_image(jt.array(chw), (int(image.shape[0]), int(image.shape[1])))

    def set_jittor_image(self, transformed_image: jt.Var, original_image_size: Tuple[int, int]) -> None:
        """Compute the embedding of an already resized (1, 3, h, w) image whose long side is img_size."""
        shape = tuple(transformed_image.shape)
        if len(shape) != 4 or shape[1] != 3 or max(shape[2:]) != self.model.img_size:
            raise ValueError(f"expected a 1x3xHxW image with long side {self.model.img_size}, got {shape}")
        self.reset_image()
        with jt.no_grad():
            features = self.model.image_encoder(self.model.preprocess(transformed_image))
            features.sync()
        self.features = features
        self.original_size = (int(original_image_size[0]), int(original_image_size[1]))
        self.input_size = (int(shape[2]), int(shape[3]))
        self.is_image_set = True

    def get_image_embedding(self) -> jt.Var:
        """The (1, C, h, w) embedding of the current image."""
        self._require_image()
        return self.features

    def _require_image(self) -> None:
        """Raise unless set_image has been called."""
        if not self.is_image_set:
            raise RuntimeError("call set_image(...) before predicting masks")

    def predict(
        self,
        point_coords: Optional[np.ndarray] = None,
        point_labels: Optional[np.ndarray] = None,
        box: Optional[np.ndarray] = None,
        mask_input: Optional[np.ndarray] = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predict masks for one prompt set given in original-image pixels.

        point_coords (N, 2) x/y with point_labels (N,) 1=foreground 0=background; box (4,) xyxy;
        mask_input (1, 4h, 4w) low-res logits from a previous call. Returns masks (C, H, W) (bool,
        or float logits if return_logits), iou_predictions (C,) and low-res logits (C, 4h, 4w).
        """
        self._require_image()
        coords = labels = boxes = masks_in = None
        if point_coords is not None:
            if point_labels is None:
                raise ValueError("point_labels are required with point_coords")
            pts = self.transform.apply_coords(np.asarray(point_coords), self.original_size)
            coords = jt.array(pts.astype(np.float32)[None])
            labels = jt.array(np.asarray(point_labels, dtype=np.int32)[None])
        if box is not None:
            bx = self.transform.apply_boxes(np.asarray(box), self.original_size)
            boxes = jt.array(bx.astype(np.float32).reshape(1, 4))
        if mask_input is not None:
            masks_in = jt.array(np.asarray(mask_input, dtype=np.float32)[None])
        masks, iou, low_res = self.predict_jittor(coords, labels, boxes, masks_in, multimask_output, return_logits)
        return masks.numpy()[0], iou.numpy()[0], low_res.numpy()[0]

    def decode(
        self,
        point_coords: Optional[jt.Var],
        point_labels: Optional[jt.Var],
        boxes: Optional[jt.Var] = None,
        mask_input: Optional[jt.Var] = None,
        multimask_output: bool = True,
    ) -> Tuple[jt.Var, jt.Var]:
        """Low-res mask logits (B, C, 4h, 4w) and IoU predictions (B, C) for batched model-frame prompts."""
        self._require_image()
        points = (point_coords, point_labels) if point_coords is not None else None
        with jt.no_grad():
            sparse, dense = self.model.prompt_encoder(points, boxes, mask_input)
            return self.model.mask_decoder(
                self.features, self.model.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output
            )

    def upscale(self, low_res_logits: jt.Var) -> jt.Var:
        """Resize low-res logits (..., 4h, 4w) to the original image size."""
        self._require_image()
        with jt.no_grad():
            return self.model.postprocess_masks(low_res_logits, self.input_size, self.original_size)

    def predict_jittor(
        self,
        point_coords: Optional[jt.Var],
        point_labels: Optional[jt.Var],
        boxes: Optional[jt.Var] = None,
        mask_input: Optional[jt.Var] = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> Tuple[jt.Var, jt.Var, jt.Var]:
        """Batched prediction with prompts already in the resized (model input) frame.

        point_coords (B, N, 2), point_labels (B, N), boxes (B, 4), mask_input (B, 1, 4h, 4w).
        Returns masks (B, C, H, W) at original size, IoU predictions (B, C), low-res logits.
        """
        low_res, iou = self.decode(point_coords, point_labels, boxes, mask_input, multimask_output)
        masks = self.upscale(low_res)
        if not return_logits:
            masks = masks > self.model.mask_threshold
        return masks, iou, low_res
