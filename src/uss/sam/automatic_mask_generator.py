"""SamAutomaticMaskGenerator: prompt SAM with a grid of points (optionally on image crops),
filter by predicted IoU and stability, de-duplicate with box NMS, and return mask records."""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import jittor as jt

from uss.sam.amg_utils import (
    MaskData,
    area_from_rle,
    batched_mask_to_box,
    batched_nms,
    box_area,
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    generate_crop_boxes,
    is_box_near_crop_edge,
    mask_to_rle,
    remove_small_regions,
    rle_to_mask,
    uncrop_boxes_xyxy,
    uncrop_masks,
    uncrop_points,
)
from uss.sam.oom import iter_batches_with_oom_backoff
from uss.sam.predictor import SamPredictor
from uss.sam.sam import Sam


def _empty_batch() -> MaskData:
    """MaskData with every column a batch produces, and no rows."""
    return MaskData(
        iou_preds=np.zeros((0,), np.float32),
        points=np.zeros((0, 2), np.float64),
        stability_score=np.zeros((0,), np.float32),
        boxes=np.zeros((0, 4), np.int64),
        rles=[],
    )


class SamAutomaticMaskGenerator:
    """Whole-image mask generation from a grid of single-point prompts."""

    def __init__(
        self,
        model: Sam,
        points_per_side: Optional[int] = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: Optional[List[np.ndarray]] = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        oom_backoff: Optional[bool] = None,
    ) -> None:
        """See the module docstring; oom_backoff (default: on when jittor uses CUDA) halves
        points_per_batch and retries a batch that runs out of device memory."""
        if (points_per_side is None) == (point_grids is None):
            raise ValueError("give exactly one of points_per_side and point_grids")
        if points_per_side is not None:
            self.point_grids = build_all_layer_point_grids(
                points_per_side, crop_n_layers, crop_n_points_downscale_factor
            )
        else:
            self.point_grids = [np.asarray(g, dtype=np.float64) for g in point_grids]
        if len(self.point_grids) < crop_n_layers + 1:
            raise ValueError("point_grids needs one grid per crop layer")
        if output_mode not in ("binary_mask", "uncompressed_rle"):
            raise ValueError(f"output_mode must be 'binary_mask' or 'uncompressed_rle', got {output_mode!r}")
        if points_per_batch < 1:
            raise ValueError("points_per_batch must be >= 1")
        self.predictor = SamPredictor(model)
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.crop_n_points_downscale_factor = crop_n_points_downscale_factor
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode
        self.oom_backoff = oom_backoff

    def generate(self, image: np.ndarray) -> List[Dict[str, Any]]:
        """Masks for an HxWx3 uint8 RGB image, as records with segmentation, area, bbox (xywh),
        predicted_iou, point_coords, stability_score and crop_box (xywh)."""
        data = self._generate_masks(image)
        if self.min_mask_region_area > 0:
            data = self.postprocess_small_regions(
                data, self.min_mask_region_area, max(self.box_nms_thresh, self.crop_nms_thresh)
            )
        if self.output_mode == "binary_mask":
            segmentations = [rle_to_mask(rle) for rle in data["rles"]]
        else:
            segmentations = list(data["rles"])
        records = []
        for i, seg in enumerate(segmentations):
            records.append(
                {
                    "segmentation": seg,
                    "area": area_from_rle(data["rles"][i]),
                    "bbox": box_xyxy_to_xywh(data["boxes"][i]).tolist(),
                    "predicted_iou": float(data["iou_preds"][i]),
                    "point_coords": [data["points"][i].tolist()],
                    "stability_score": float(data["stability_score"][i]),
                    "crop_box": box_xyxy_to_xywh(np.asarray(data["crop_boxes"][i])).tolist(),
                }
            )
        return records

    def _generate_masks(self, image: np.ndarray) -> MaskData:
        """Run every crop and remove duplicates across crops (preferring smaller crops)."""
        orig_size = (int(image.shape[0]), int(image.shape[1]))
        crop_boxes, layer_idxs = generate_crop_boxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)
        data = MaskData()
        for crop_box, layer_idx in zip(crop_boxes, layer_idxs):
            data.cat(self._process_crop(image, crop_box, layer_idx, orig_size))
        if len(crop_boxes) > 1 and len(data) > 0:
            scores = 1.0 / box_area(data["crop_boxes"]).astype(np.float32)
            keep = batched_nms(data["boxes"], scores, np.zeros(len(data)), self.crop_nms_thresh)
            data.filter(keep)
        return data

    def _process_crop(
        self, image: np.ndarray, crop_box: List[int], layer_idx: int, orig_size: Tuple[int, int]
    ) -> MaskData:
        """Embed one crop, run its point grid in batches, and NMS within the crop."""
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1, :]
        crop_size = (int(crop.shape[0]), int(crop.shape[1]))
        self.predictor.set_image(crop)
        points = self.point_grids[layer_idx] * np.array(crop_size, dtype=np.float64)[None, ::-1]

        data = _empty_batch()
        batches = iter_batches_with_oom_backoff(
            lambda s, e: self._process_batch(points[s:e], crop_size, crop_box, orig_size),
            total=len(points),
            batch_size=self.points_per_batch,
            enabled=self.oom_backoff,
        )
        for _, _, batch_data in batches:
            data.cat(batch_data)
        self.predictor.reset_image()

        keep = batched_nms(data["boxes"], data["iou_preds"], np.zeros(len(data)), self.box_nms_thresh)
        data.filter(keep)
        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = np.tile(np.asarray(crop_box, dtype=np.int64)[None], (len(data), 1))
        return data

    def _process_batch(
        self, points: np.ndarray, im_size: Tuple[int, int], crop_box: Sequence[int], orig_size: Tuple[int, int]
    ) -> MaskData:
        """Predict, filter and RLE-encode the masks for one batch of crop-frame points."""
        orig_h, orig_w = orig_size
        model_points = self.predictor.transform.apply_coords(points, im_size).astype(np.float32)
        coords = jt.array(model_points[:, None, :])
        labels = jt.ones((len(points), 1), dtype="int32")
        low_res, iou = self.predictor.decode(coords, labels, multimask_output=True)
        jt.sync([low_res, iou])
        n_masks = low_res.shape[1]
        iou_np = iou.numpy().reshape(-1)
        point_rows = np.repeat(points, n_masks, axis=0)

        # Filtering by predicted IoU first means only surviving masks are upscaled.
        if self.pred_iou_thresh > 0.0:
            keep = np.flatnonzero(iou_np > self.pred_iou_thresh)
        else:
            keep = np.arange(len(iou_np))
        if len(keep) == 0:
            return _empty_batch()
        low_flat = low_res.reshape((-1,) + tuple(low_res.shape[2:]))
        threshold = self.predictor.model.mask_threshold
        offset = self.stability_score_offset
        with jt.no_grad():
            logits = self.predictor.upscale(low_flat[jt.array(keep.astype(np.int32))])
            inner = (logits > threshold + offset).int32().sum(dims=(1, 2))
            outer = (logits > threshold - offset).int32().sum(dims=(1, 2))
            binary = logits > threshold
            jt.sync([inner, outer, binary])  # one pass over the full-size logits
        del logits
        with np.errstate(divide="ignore", invalid="ignore"):
            stability = inner.numpy().astype(np.float32) / outer.numpy().astype(np.float32)

        if self.stability_score_thresh > 0.0:
            chosen = np.flatnonzero(stability >= self.stability_score_thresh)
        else:
            chosen = np.arange(len(keep))
        if len(chosen) == 0:
            return _empty_batch()
        masks = binary.numpy()[chosen]
        del binary
        data = MaskData(
            iou_preds=iou_np[keep][chosen].astype(np.float32),
            points=point_rows[keep][chosen],
            stability_score=stability[chosen],
            boxes=batched_mask_to_box(masks),
        )
        near_edge = is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, orig_w, orig_h])
        if near_edge.any():
            data.filter(~near_edge)
            masks = masks[~near_edge]
        data["rles"] = mask_to_rle(uncrop_masks(masks, crop_box, orig_h, orig_w))
        return data

    @staticmethod
    def postprocess_small_regions(mask_data: MaskData, min_area: int, nms_thresh: float) -> MaskData:
        """Fill small holes and drop small islands in every mask, then NMS again preferring unchanged masks."""
        if len(mask_data["rles"]) == 0:
            return mask_data
        boxes = []
        scores = []
        changed_rles: Dict[int, Dict[str, Any]] = {}
        for i, rle in enumerate(mask_data["rles"]):
            mask = rle_to_mask(rle)
            mask, holes_changed = remove_small_regions(mask, min_area, mode="holes")
            mask, islands_changed = remove_small_regions(mask, min_area, mode="islands")
            unchanged = not (holes_changed or islands_changed)
            if not unchanged:
                changed_rles[i] = mask_to_rle(mask[None])[0]
            boxes.append(batched_mask_to_box(mask[None])[0])
            scores.append(float(unchanged))
        boxes_np = np.stack(boxes).astype(np.int64)
        keep = batched_nms(boxes_np, np.asarray(scores, np.float32), np.zeros(len(boxes)), nms_thresh)
        for i in keep:
            if i in changed_rles:
                mask_data["rles"][i] = changed_rles[i]
                mask_data["boxes"][i] = boxes_np[i]
        mask_data.filter(keep)
        return mask_data
