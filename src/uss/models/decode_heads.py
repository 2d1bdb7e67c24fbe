"""Decode heads for semantic segmentation: backbone stage maps (C2..C5) -> per-pixel class logits.

Every head takes the list of the four ResNet stage outputs [C2, C3, C4, C5] (strides 4, 8, 16, 32) and
returns logits N x (K+1) x h x w: channel 0 is background, channels 1..K the (pseudo-)classes. `h x w` is
the resolution of the head's `output_stride`; the caller upsamples the logits to the label / image size.

`LinearHead` is PASS's fine-tuning head (`last_layer`: one 1x1 conv with bias on C5). New heads (e.g. a
UPerNet on all four stages) subclass `DecodeHead`, implement `decode` and register in `HEADS`.
"""
from __future__ import annotations

from typing import Dict, Sequence, Type

import jittor as jt
from jittor import nn

from uss.models.resnet import kaiming_init_convs

__all__ = ["DecodeHead", "LinearHead", "HEADS", "build_head"]

NUM_STAGES = 4


class DecodeHead(nn.Module):
    """Base class: checks the stage maps and defines the output layout (K+1 channels, 0 = background).

    in_channels: channels of C2..C5 (the backbone's `out_channels`); num_classes: K (without background).
    Subclasses set `output_stride` (input pixels per output pixel) and implement `decode(features)`.
    """

    output_stride: int = 32

    def __init__(self, in_channels: Sequence[int], num_classes: int) -> None:
        super().__init__()
        if len(in_channels) != NUM_STAGES:
            raise ValueError(f"a decode head needs the channels of the {NUM_STAGES} backbone stages, got {in_channels}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.in_channels = [int(c) for c in in_channels]
        self.num_classes = int(num_classes)

    @property
    def num_outputs(self) -> int:
        """Logit channels: K classes + background."""
        return self.num_classes + 1

    def execute(self, features: Sequence[jt.Var]) -> jt.Var:
        """features: [C2, C3, C4, C5] -> logits N x (K+1) x h x w."""
        if len(features) != NUM_STAGES:
            raise ValueError(f"expected the {NUM_STAGES} backbone stage maps [C2, C3, C4, C5], got {len(features)}")
        for index, (feature, channels) in enumerate(zip(features, self.in_channels)):
            if feature.ndim != 4 or feature.shape[1] != channels:
                raise ValueError(f"stage map C{index + 2} has shape {tuple(feature.shape)}, "
                                 f"expected N x {channels} x h x w")
        return self.decode(list(features))

    def decode(self, features: Sequence[jt.Var]) -> jt.Var:
        raise NotImplementedError


class LinearHead(DecodeHead):
    """PASS's fine-tuning head: a 1x1 convolution (with bias) from C5 to K+1 logits, output stride 32."""

    output_stride = 32

    def __init__(self, in_channels: Sequence[int], num_classes: int) -> None:
        super().__init__(in_channels, num_classes)
        self.conv = nn.Conv2d(self.in_channels[-1], self.num_outputs, kernel_size=1, bias=True)
        kaiming_init_convs(self)  # PASS initialises every conv, last_layer included, kaiming fan_out

    def decode(self, features: Sequence[jt.Var]) -> jt.Var:
        return self.conv(features[-1])


HEADS: Dict[str, Type[DecodeHead]] = {"linear": LinearHead}


def build_head(name: str, in_channels: Sequence[int], num_classes: int) -> DecodeHead:
    """A registered head by name ('linear')."""
    if name not in HEADS:
        raise ValueError(f"unknown decode head {name!r}; choose from {sorted(HEADS)}")
    return HEADS[name](in_channels, num_classes)
