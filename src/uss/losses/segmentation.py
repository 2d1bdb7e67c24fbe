"""Fine-tuning loss: per-pixel cross-entropy on pseudo labels, ignoring the pixels labelled 1000."""
from typing import Tuple

import jittor as jt
from jittor import nn

from uss.data.label_png import IGNORE

__all__ = ["masked_cross_entropy", "segmentation_loss"]


def masked_cross_entropy(logits: jt.Var, labels: jt.Var, ignore_index: int = IGNORE) -> Tuple[jt.Var, jt.Var]:
    """Mean per-pixel cross-entropy over the pixels whose label is not `ignore_index`.

    logits: N x C x H x W; labels: N x H x W integer ids in [0, C) or ignore_index. Ignored pixels add
    nothing to the loss or the gradient. Returns (loss, number of counted pixels); the loss is 0 when
    every pixel is ignored.
    """
    if logits.ndim != 4 or labels.ndim != 3 or tuple(labels.shape) != (logits.shape[0],) + tuple(logits.shape[2:]):
        raise ValueError(f"logits N x C x H x W and labels N x H x W expected, got {logits.shape} and {labels.shape}")
    labels = labels.int32()
    valid = (labels != ignore_index).float32()
    shifted = logits - logits.max(dim=1, keepdims=True).stop_grad()
    log_norm = shifted.exp().sum(dim=1).log()
    picked = (shifted * (jt.index(shifted.shape, 1) == labels.unsqueeze(1))).sum(dim=1)
    count = valid.sum()
    loss = ((log_norm - picked) * valid).sum() / jt.maximum(count, jt.float32(1.0))
    return loss, count


def segmentation_loss(model: jt.nn.Module, images: jt.Var, labels: jt.Var) -> Tuple[jt.Var, jt.Var, jt.Var]:
    """Forward, upsample the logits bilinearly to the label size (as PASS) and apply the masked cross-entropy.
    Returns (loss, counted pixels, predicted ids N x h x w)."""
    logits = model(images)
    logits = nn.interpolate(logits, size=tuple(labels.shape[1:]), mode="bilinear", align_corners=False)
    loss, count = masked_cross_entropy(logits, labels)
    return loss, count, jt.argmax(logits.detach(), dim=1)[0]
