"""PASS losses: Sinkhorn-Knopp, SwAV swapped prediction with queue, deep-to-shallow, pixel-to-pixel; MPI helpers;
fine-tuning's masked cross-entropy. The stages' whole-batch objectives: uss.training.swav_task."""
from uss.losses.pixel import pixel_to_pixel_loss
from uss.losses.segmentation import masked_cross_entropy, segmentation_loss
from uss.losses.sinkhorn import sinkhorn
from uss.losses.swav import (
    EmbeddingQueue,
    combine_pass_losses,
    deep_to_shallow_loss,
    swapped_prediction_loss,
    swav_codes,
)

__all__ = [
    "masked_cross_entropy",
    "segmentation_loss",
    "pixel_to_pixel_loss",
    "sinkhorn",
    "EmbeddingQueue",
    "combine_pass_losses",
    "deep_to_shallow_loss",
    "swapped_prediction_loss",
    "swav_codes",
]
