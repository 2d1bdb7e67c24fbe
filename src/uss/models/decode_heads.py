"""Decode heads for semantic segmentation: backbone stage maps (C2..C5) -> per-pixel class logits.

Every head takes the list of the four ResNet stage outputs [C2, C3, C4, C5] (strides 4, 8, 16, 32) and
returns logits N x (K+1) x h x w: channel 0 is background, channels 1..K the (pseudo-)classes. `h x w` is
the resolution of the head's `output_stride` (given for the ImageNet stem; the small stem of
`uss.models.resnet` divides every stride by 4); the caller upsamples the logits to the label / image size.

`LinearHead` is PASS's fine-tuning head (`last_layer`: one 1x1 conv with bias on C5). `UPerNetHead` is a
UPerNet (pyramid pooling on C5 + FPN over C2..C5, output stride 4) with mmsegmentation's UPerHead layout and
parameter names. A new head subclasses `DecodeHead`: it builds its layers, then calls `add_classifier(channels)` and
`init_weights()`, implements `decode` ending in `self.classify(x)`, and registers in `HEADS`; `PyramidPooling` is
the pooling module a PSP head would reuse.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Type

import jittor as jt
import numpy as np
from jittor import init, nn

from uss.models.batchnorm import BatchNorm2d
from uss.models.resize import resample_separable, resize_bilinear
from uss.models.resnet import kaiming_init_convs

__all__ = ["DecodeHead", "LinearHead", "UPerNetHead", "ConvBNReLU", "PyramidPooling", "AdaptiveAvgPool2d",
           "adaptive_pool_matrix", "HEADS", "build_head",
           "head_options", "CLASSIFIER_INITS"]

NUM_STAGES = 4
CLASSIFIER_INITS = ("normal", "kaiming")
UPERNET_CHANNELS = 512  # mmsegmentation's UPerHead / the challenge entry
POOL_SCALES = (1, 2, 3, 6)  # PSPNet's and mmsegmentation's pyramid pooling bins
UPERNET_DROPOUT = 0.1  # mmsegmentation's BaseDecodeHead dropout_ratio


class DecodeHead(nn.Module):
    """Base class: checks the stage maps, defines the output layout (K+1 channels, 0 = background) and owns the
    dropout, the 1x1 classifier and the initialisation.

    in_channels: channels of C2..C5 (the backbone's `out_channels`); num_classes: K (without background);
    dropout_ratio: channel-wise dropout before the classifier (0: none). Subclasses set `output_stride` (input
    pixels per output pixel), build their layers, then call `add_classifier` and `init_weights`, and implement
    `decode(features)` ending in `classify`.
    """

    output_stride: int = 32

    def __init__(self, in_channels: Sequence[int], num_classes: int, classifier_init: str = "normal",
                 dropout_ratio: float = 0.0) -> None:
        super().__init__()
        if classifier_init not in CLASSIFIER_INITS:
            raise ValueError(f"unknown classifier init {classifier_init!r}; choose from {CLASSIFIER_INITS}")
        self.classifier_init = classifier_init
        if len(in_channels) != NUM_STAGES:
            raise ValueError(f"a decode head needs the channels of the {NUM_STAGES} backbone stages, got {in_channels}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if not 0.0 <= dropout_ratio < 1.0:
            raise ValueError(f"dropout_ratio must be in [0, 1), got {dropout_ratio}")
        self.in_channels = [int(c) for c in in_channels]
        self.num_classes = int(num_classes)
        self.dropout_ratio = float(dropout_ratio)
        self.classifier_name = "conv_seg"

    @property
    def num_outputs(self) -> int:
        """Logit channels: K classes + background."""
        return self.num_classes + 1

    def add_classifier(self, channels: int, name: str = "conv_seg") -> None:
        """The dropout and the 1x1 classifier (with bias) from `channels` features to K+1 logits, as attribute `name`
        (mmsegmentation: conv_seg). Called after the head's own layers, so parameters are created (and a seed draws
        them) in the layout's order."""
        self.dropout = nn.Dropout2d(self.dropout_ratio) if self.dropout_ratio > 0 else nn.Identity()
        self.classifier_name = name
        setattr(self, name, nn.Conv2d(channels, self.num_outputs, kernel_size=1, bias=True))

    @property
    def classifier(self) -> nn.Conv2d:
        """The final 1x1 convolution."""
        return getattr(self, self.classifier_name)

    def init_weights(self) -> None:
        """A head with inner layers: kaiming-normal (fan_out, relu) on every conv as mmcv's ConvModule (the pass
        also draws for the classifier, which a seed's weights depend on); then `init_classifier`."""
        if any(isinstance(m, nn.Conv2d) and m is not self.classifier for m in self.modules()):
            kaiming_init_convs(self)
        self.init_classifier(self.classifier)

    def init_classifier(self, conv: nn.Conv2d) -> None:
        """Initialise the final 1x1 classifier. 'normal': N(0, 0.01) weights and zero bias (mmsegmentation's
        BaseDecodeHead), so the first logits are near 0 and the loss starts at ln(K+1). 'kaiming': fan_out
        kaiming-normal as PASS (src/resnet.py initialises `last_layer` with every other conv); on C5 features that
        gives logits of std ~10 and a first loss ~5x ln(K+1), which only LARC's tiny relative steps over PASS's
        thousands of iterations absorb: with plain SGD on the demo it never left the background."""
        if self.classifier_init == "normal":
            init.gauss_(conv.weight, 0.0, 0.01)
        else:
            init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        if conv.bias is not None:
            init.constant_(conv.bias, 0.0)

    def classify(self, x: jt.Var) -> jt.Var:
        """Dropout, then the classifier: features -> K+1 logits."""
        return self.classifier(self.dropout(x))

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
    """PASS's fine-tuning head: a 1x1 convolution (with bias) from C5 to K+1 logits, output stride 32; no dropout
    unless asked. The classifier is named `conv` (PASS's `last_layer` loads as head.conv)."""

    output_stride = 32

    def __init__(self, in_channels: Sequence[int], num_classes: int, classifier_init: str = "normal",
                 dropout_ratio: float = 0.0) -> None:
        super().__init__(in_channels, num_classes, classifier_init, dropout_ratio)
        self.add_classifier(self.in_channels[-1], name="conv")
        self.init_weights()

    def decode(self, features: Sequence[jt.Var]) -> jt.Var:
        """1x1 conv on C5."""
        return self.classify(features[-1])


class ConvBNReLU(nn.Module):
    """Conv (no bias) -> BatchNorm -> ReLU, with mmcv ConvModule's parameter names (conv, bn)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.bn = BatchNorm2d(out_channels)
        self.activate = nn.ReLU()

    def execute(self, x: jt.Var) -> jt.Var:
        """conv-BN-ReLU."""
        return self.activate(self.bn(self.conv(x)))


def adaptive_pool_matrix(out_size: int, in_size: int) -> np.ndarray:
    """out x in averaging weights of PyTorch's 1-D adaptive average pooling
    (bins floor(i*in/out)..ceil((i+1)*in/out))."""
    matrix = np.zeros((out_size, in_size), dtype=np.float32)
    for i in range(out_size):
        start = (i * in_size) // out_size
        stop = -((-(i + 1) * in_size) // out_size)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix


class AdaptiveAvgPool2d(nn.Module):
    """Adaptive average pooling to size x size with PyTorch's bins, also when the map is smaller than the output
    (jittor's own AdaptiveAvgPool2d uses uniform strides and fails there); separable, as two matrix products."""

    def __init__(self, output_size: int) -> None:
        super().__init__()
        self.output_size = int(output_size)

    def execute(self, x: jt.Var) -> jt.Var:
        """N x C x H x W -> N x C x s x s."""
        s = self.output_size
        if s == 1:
            return x.mean(dims=(2, 3), keepdims=True)
        h, w = x.shape[2:]
        return resample_separable(x, adaptive_pool_matrix(s, w).T, adaptive_pool_matrix(s, h).T)


class PyramidPooling(nn.ModuleList):
    """PSPNet's pyramid pooling module (mmsegmentation's PPM): per scale s, adaptive average pooling to s x s and a
    1x1 conv-BN-ReLU to `channels`; returns the maps upsampled bilinearly to the input's size. Item i is
    (pool, ConvBNReLU), so its parameters are named `<i>.1.conv.*`, `<i>.1.bn.*` as mmsegmentation's."""

    def __init__(self, in_channels: int, channels: int, pool_scales: Sequence[int] = POOL_SCALES) -> None:
        scales = tuple(int(s) for s in pool_scales)
        if not scales or min(scales) < 1:
            raise ValueError(f"pool scales must be positive integers, got {tuple(pool_scales)}")
        super().__init__([nn.Sequential(AdaptiveAvgPool2d(scale), ConvBNReLU(in_channels, channels, 1))
                          for scale in scales])
        self.pool_scales = scales

    def pooled(self, x: jt.Var) -> List[jt.Var]:
        """The pooled, 1x1-convolved maps (one per scale, at the pooled size)."""
        return [module(x) for module in self]

    def execute(self, x: jt.Var) -> List[jt.Var]:
        """N x C x H x W -> one N x channels x H x W map per scale."""
        size = x.shape[2:]
        return [resize_bilinear(p, size) for p in self.pooled(x)]


class UPerNetHead(DecodeHead):
    """UPerNet (Xiao et al. 2018) as mmsegmentation's UPerHead: output stride 4, K+1 logits.

    Pyramid pooling on C5 (`psp_modules`, concatenated with C5, 3x3 conv-BN-ReLU `bottleneck`) is the top FPN
    level; 1x1 conv-BN-ReLU `lateral_convs` on C2..C4, top-down fusion (upsample + add), 3x3 conv-BN-ReLU
    `fpn_convs`; all levels are upsampled to C2's resolution, concatenated and fused by a 3x3 conv-BN-ReLU
    `fpn_bottleneck`; then dropout (channel-wise, 0.1) and the 1x1 classifier `conv_seg` (with bias). All inner
    layers have `channels` (512).
    """

    output_stride = 4

    def __init__(self, in_channels: Sequence[int], num_classes: int, classifier_init: str = "normal",
                 channels: int = UPERNET_CHANNELS, pool_scales: Sequence[int] = POOL_SCALES,
                 dropout_ratio: float = UPERNET_DROPOUT) -> None:
        super().__init__(in_channels, num_classes, classifier_init, dropout_ratio)
        self.channels = int(channels)
        top = self.in_channels[-1]
        self.psp_modules = PyramidPooling(top, self.channels, pool_scales)
        self.pool_scales = self.psp_modules.pool_scales
        self.bottleneck = ConvBNReLU(top + len(self.pool_scales) * self.channels, self.channels, 3, padding=1)
        self.lateral_convs = nn.ModuleList([ConvBNReLU(c, self.channels, 1) for c in self.in_channels[:-1]])
        self.fpn_convs = nn.ModuleList([ConvBNReLU(self.channels, self.channels, 3, padding=1)
                                        for _ in self.in_channels[:-1]])
        self.fpn_bottleneck = ConvBNReLU(len(self.in_channels) * self.channels, self.channels, 3, padding=1)
        self.add_classifier(self.channels)
        self.init_weights()

    def psp_forward(self, x: jt.Var) -> jt.Var:
        """C5 concatenated with its upsampled pyramid-pooling maps, through the 3x3 bottleneck."""
        return self.bottleneck(jt.concat([x] + self.psp_modules(x), dim=1))

    def decode(self, features: Sequence[jt.Var]) -> jt.Var:
        """[C2, C3, C4, C5] -> logits at C2's resolution."""
        laterals = [conv(features[i]) for i, conv in enumerate(self.lateral_convs)]
        laterals.append(self.psp_forward(features[-1]))
        for i in range(len(laterals) - 1, 0, -1):  # top-down: upsample and add
            laterals[i - 1] = laterals[i - 1] + resize_bilinear(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(laterals[i]) for i, conv in enumerate(self.fpn_convs)] + [laterals[-1]]
        size = outs[0].shape[2:]
        fused = self.fpn_bottleneck(jt.concat([outs[0]] + [resize_bilinear(o, size) for o in outs[1:]], dim=1))
        return self.classify(fused)


HEADS: Dict[str, Type[DecodeHead]] = {"linear": LinearHead, "upernet": UPerNetHead}


def head_options(saved: Mapping[str, Any]) -> Dict[str, Any]:
    """The head's constructor options from a stage's (saved) arguments; older checkpoints get the defaults."""
    options: Dict[str, Any] = {"classifier_init": saved.get("classifier_init") or "normal"}
    if saved.get("head_dropout") is not None:
        options["dropout_ratio"] = float(saved["head_dropout"])
    if (saved.get("head") or "linear") == "upernet":
        options["channels"] = int(saved.get("head_channels") or UPERNET_CHANNELS)
        options["pool_scales"] = tuple(int(s) for s in saved.get("pool_scales") or POOL_SCALES)
    return options


def build_head(name: str, in_channels: Sequence[int], num_classes: int, **options: Any) -> DecodeHead:
    """A registered head by name ('linear', 'upernet'); options go to its constructor (classifier_init,
    dropout_ratio, and UPerNet's channels and pool_scales)."""
    if name not in HEADS:
        raise ValueError(f"unknown decode head {name!r}; choose from {sorted(HEADS)}")
    return HEADS[name](in_channels, num_classes, **options)
