"""Semantic segmentation network: ResNet backbone + decode head (PASS pixel-level fine-tuning model).

Parameter names are `backbone.*` (the same as in PASSModel / PixelAttentionModel, so a pretraining
checkpoint loads by name) and `head.*`.
"""
from __future__ import annotations

from typing import Any

import jittor as jt
from jittor import nn

from uss.models.decode_heads import DecodeHead, build_head
from uss.models.pass_model import arch_depth
from uss.models.resnet import ResNet, build_resnet

__all__ = ["SegmentationModel", "build_segmentation_model"]

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
