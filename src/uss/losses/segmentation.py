"""Fine-tuning loss: per-pixel cross-entropy on pseudo labels, ignoring the pixels labelled 1000."""
from typing import Optional, Tuple

import jittor as jt

from uss.data.label_png import IGNORE
from uss.models.resize import resize_bilinear

__all__ = ["masked_cross_entropy", "segmentation_loss"]


def masked_cross_entropy(logits: jt.Var, labels: jt.Var, ignore_index: int = IGNORE,
                         class_weights: Optional[jt.Var] = None) -> Tuple[jt.Var, jt.Var]:
    """Mean per-pixel cross-entropy over the pixels whose label is not `ignore_index`.

    logits: N x C x H x W; labels: N x H x W integer ids in [0, C) or ignore_index. Ignored pixels add
    nothing to the loss or the gradient. With `class_weights` (C values) each pixel's term is weighted by its
    label's weight and the mean is taken over the weights (PyTorch's cross_entropy(weight=...)). Returns (loss,
    number of counted pixels); the loss is 0 when every pixel is ignored.
    """
    if logits.ndim != 4 or labels.ndim != 3 or tuple(labels.shape) != (logits.shape[0],) + tuple(logits.shape[2:]):
        raise ValueError(f"logits N x C x H x W and labels N x H x W expected, got {logits.shape} and {labels.shape}")
    labels = labels.int32()
    valid = (labels != ignore_index).float32()
    shifted = logits - logits.max(dim=1, keepdims=True).stop_grad()
    log_norm = shifted.exp().sum(dim=1).log()
    picked = (shifted * (jt.index(shifted.shape, 1) == labels.unsqueeze(1))).sum(dim=1)
    count = valid.sum()
    weight = valid
    if class_weights is not None:
        weight = valid * class_weights[jt.clamp(labels, 0, logits.shape[1] - 1)]
    loss = ((log_norm - picked) * weight).sum() / jt.maximum(weight.sum(), jt.float32(1e-12))
    return loss, count


def segmentation_loss(model: jt.nn.Module, images: jt.Var, labels: jt.Var,
                      class_weights: Optional[jt.Var] = None) -> Tuple[jt.Var, jt.Var, jt.Var]:
    """Forward, upsample the logits bilinearly to the label size (as PASS) and apply the masked cross-entropy
    (weighted per class with `class_weights`). Returns (loss, counted pixels, predicted ids N x h x w)."""
    logits = model(images)
    logits = resize_bilinear(logits, labels.shape[1:])
    loss, count = masked_cross_entropy(logits, labels, class_weights=class_weights)
    return loss, count, jt.argmax(logits.detach(), dim=1)[0]
