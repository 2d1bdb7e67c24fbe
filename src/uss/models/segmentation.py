"""Semantic segmentation network: ResNet backbone + decode head (PASS pixel-level fine-tuning model).

Parameter names are `backbone.*` (the same as in PASSModel / PixelAttentionModel, so a pretraining
checkpoint loads by name) and `head.*`.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

import jittor as jt
from jittor import nn

from uss.models.decode_heads import DecodeHead, build_head
from uss.models import foreign
from uss.models.pass_model import arch_depth
from uss.models.resnet import ResNet, build_resnet
from uss.training.checkpoint import CheckpointError, load_checkpoint, load_model_state

__all__ = ["SegmentationModel", "build_segmentation_model", "load_pretrained_backbone", "model_weights",
           "convert_pass_finetune_state_dict"]

BACKBONE = "backbone."


class SegmentationModel(nn.Module):
    """images N x 3 x H x W -> logits N x (K+1) x H/s x W/s (s = head.output_stride; channel 0 = background)."""

    def __init__(self, backbone: ResNet, head: DecodeHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def execute(self, images: jt.Var) -> jt.Var:
        return self.head(list(self.backbone(images)))


def build_segmentation_model(arch: str, num_classes: int, head: str = "linear", width: float = 1.0,
                             stem: str = "imagenet", **head_options: Any) -> SegmentationModel:
    """ResNet (`resnet18` ... `resnet101`, channel `width`, `stem`) + decode head ('linear' = PASS's 1x1 conv on
    C5) for K classes; head_options go to the head (classifier_init, dropout_ratio, UPerNet channels and
    pool_scales)."""
    backbone = build_resnet(arch_depth(arch), width=width, stem=stem)
    return SegmentationModel(backbone, build_head(head, backbone.out_channels, num_classes, **head_options))


def convert_pass_finetune_state_dict(state_dict: Mapping[str, Any]) -> Dict[str, Any]:
    """A LUSSeg/PASS ResNet state dict (pretraining or fine-tuning) in this package's names:
    backbone keys get `backbone.`, PASS's `last_layer.*` (fine-tuning head) becomes `head.conv.*`
    (the challenge entry's UPerNet `last_layer.*`: `head.*`)."""
    return foreign.to_package_names(state_dict)


def model_weights(checkpoint: Mapping[str, Any]) -> Dict[str, Any]:
    """The tensors of a checkpoint dict (its 'state_dict', or the dict itself), in this package's names;
    of a foreign file (PASS, torchvision, challenge entry) only the backbone and segmentation head."""
    weights = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(weights, Mapping):
        raise CheckpointError("checkpoint holds no state_dict")
    if foreign.is_foreign(weights):
        return foreign.keep_prefixes(foreign.to_package_names(weights), (BACKBONE, "head."))
    return dict(weights)


def load_pretrained_backbone(model: SegmentationModel, checkpoint_path: str) -> int:
    """Load `backbone.*` from a pretraining (or pixel-attention / fine-tuning) checkpoint; heads are left as built.

    Every backbone tensor of the model must be in the file with the right shape; a missing or
    mismatched one raises CheckpointError naming the file. Returns the number of tensors loaded.
    """
    try:
        weights = model_weights(load_checkpoint(checkpoint_path))
    except CheckpointError as error:
        if str(error).startswith(checkpoint_path):
            raise
        raise CheckpointError(f"{checkpoint_path}: {error}") from None
    backbone = {k[len(BACKBONE):]: v for k, v in weights.items() if k.startswith(BACKBONE)}
    if not backbone:
        raise CheckpointError(f"{checkpoint_path}: holds no backbone.* tensors (not a PASS pretraining checkpoint?)")
    own = model.backbone.state_dict()
    missing = sorted(k for k in own if k not in backbone)
    if missing:
        raise CheckpointError(
            f"{checkpoint_path}: {len(missing)} backbone tensors of the model are missing from the checkpoint "
            f"(wrong --arch?): {[BACKBONE + k for k in missing[:6]]}{' ...' if len(missing) > 6 else ''}")
    try:
        load_model_state(model.backbone, backbone, checkpoint_path)  # names unexpected / mis-shaped tensors
    except CheckpointError as error:
        raise CheckpointError(f"{error} (names relative to backbone.; wrong --arch?)") from None
    return len(backbone)
