"""ResNet-18/34/50/101 backbone returning the four stage outputs, with torchvision parameter names.

Two options serve small images (the demo) and leave the ImageNet network unchanged at their defaults:
`width` scales every stage's channels (64, 128, 256, 512 x width, as wide/slim ResNets do), and
`stem="small"` replaces the 7x7/2 convolution + 3x3/2 max-pool by one 3x3/1 convolution (the CIFAR-style
stem of He et al. 2016, section 4.2), so the stage strides are 1, 2, 4, 8 instead of 4, 8, 16, 32.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Type, Union

import jittor as jt
from jittor import init, nn

from uss.models.batchnorm import BatchNorm2d

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "build_resnet", "RESNET_SPECS", "STEMS", "kaiming_init_convs",
           "backbone_options"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution with no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or projected) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = BatchNorm2d(planes)
        self.downsample = downsample

    def last_bn(self) -> BatchNorm2d:
        """The BN closing the residual branch (zero-initialised on request)."""
        return self.bn2

    def execute(self, x: jt.Var) -> jt.Var:
        """Residual forward."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn1(self.conv1(x), relu=True)
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1-3x3-1x1 bottleneck (stride on the 3x3, as torchvision v1.5)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def last_bn(self) -> BatchNorm2d:
        """The BN closing the residual branch (zero-initialised on request)."""
        return self.bn3

    def execute(self, x: jt.Var) -> jt.Var:
        """Residual forward."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn1(self.conv1(x), relu=True)
        out = self.bn2(self.conv2(out), relu=True)
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


Block = Union[Type[BasicBlock], Type[Bottleneck]]

RESNET_SPECS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


STEMS = {"imagenet": 4, "small": 1}  # stem -> stride of C2 (layer1's output)


def kaiming_init_convs(module: nn.Module) -> None:
    """Kaiming-normal (fan_out, relu) init of every Conv2d weight under `module`, as torchvision/SwAV/PASS."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class ResNet(nn.Module):
    """ResNet trunk (no pooling/fc); `execute(x)` returns (C2, C3, C4, C5) at strides `strides`
    (4, 8, 16, 32 with the ImageNet stem, 1, 2, 4, 8 with the small one)."""

    def __init__(self, block: Block, layers: Sequence[int], zero_init_residual: bool = False, width: float = 1.0,
                 stem: str = "imagenet") -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"unknown ResNet stem {stem!r}; choose from {sorted(STEMS)}")
        if not 0 < width <= 4 or round(64 * width) < 1:
            raise ValueError(f"ResNet width multiplier must lie in (0, 4], got {width}")
        planes = [int(round(c * width)) for c in (64, 128, 256, 512)]
        self.width = float(width)
        self.stem = stem
        self.inplanes = planes[0]
        if stem == "imagenet":
            # PASS/SwAV pad by 1 then convolve with padding 2; a single padding of 3 is the same operation.
            self.conv1 = nn.Conv2d(3, planes[0], kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(3, planes[0], kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = BatchNorm2d(planes[0])
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.out_channels: list[int] = [c * block.expansion for c in planes]
        first = STEMS[stem]
        self.strides: list[int] = [first, 2 * first, 4 * first, 8 * first]
        kaiming_init_convs(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    init.constant_(m.last_bn().weight, 0.0)

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        """One stage of `blocks` residual blocks; the first one may downsample."""
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def execute(self, x: jt.Var) -> tuple[jt.Var, jt.Var, jt.Var, jt.Var]:
        """Return the outputs of layer1..layer4 (C2, C3, C4, C5)."""
        x = self.maxpool(self.bn1(self.conv1(x), relu=True))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return c2, c3, c4, c5


def build_resnet(depth: int, zero_init_residual: bool = False, width: float = 1.0, stem: str = "imagenet") -> ResNet:
    """ResNet of the given depth (18, 34, 50 or 101), channel width multiplier and stem ('imagenet' | 'small')."""
    if depth not in RESNET_SPECS:
        raise ValueError(f"unsupported ResNet depth {depth}; choose from {sorted(RESNET_SPECS)}")
    block, layers = RESNET_SPECS[depth]
    return ResNet(block, layers, zero_init_residual=zero_init_residual, width=width, stem=stem)


def backbone_options(saved: Mapping[str, Any]) -> Dict[str, Any]:
    """The width/stem keyword arguments from a stage's (saved) arguments; older checkpoints get the defaults."""
    return {"width": float(saved.get("width") or 1.0), "stem": saved.get("stem") or "imagenet"}
