"""PASS pixel attention: per-channel foreground attention on upsampled, L2-normalised last-stage features."""
from __future__ import annotations

from typing import Optional, Sequence

import jittor as jt
from jittor import nn

from uss.models.batchnorm import BatchNorm2d
from uss.models.heads import ProjectionHead, Prototypes, default_hidden_dim
from uss.models.multicrop import resolution_groups
from uss.models.resize import resize_bilinear
from uss.models.resnet import build_resnet, kaiming_init_convs

__all__ = ["PixelAttention", "PixelAttentionModel", "upsample_features"]


def upsample_features(c5: jt.Var, scale: int = 4) -> jt.Var:
    """Bilinear (align_corners=False) upsampling of a N x C x h x w map to N x C x (scale*h) x (scale*w)."""
    return resize_bilinear(c5, (c5.shape[2] * scale, c5.shape[3] * scale))


class PixelAttention(nn.Module):
    """PASS `Mulpixelattn`: sigmoid(BN(conv1x1(ReLU(BN(conv1x1(x))))) + b), one attention value per channel
    and pixel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.atten = nn.Sequential(
            nn.Conv2d(channels, channels, 1),
            BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
            BatchNorm2d(channels),
        )
        # PASS calls this learnable per-channel bias `threshold`; the name is kept for checkpoint compatibility.
        self.threshold = jt.zeros((1, channels, 1, 1))
        kaiming_init_convs(self)

    def execute(self, x: jt.Var) -> jt.Var:
        """N x C x h x w (L2-normalised features) -> N x C x h x w attention in (0, 1)."""
        return jt.sigmoid(self.atten(x) + self.threshold)


def _zero_below(att: jt.Var, threshold: Optional[float]) -> jt.Var:
    """Zero attention values below `threshold` (PASS `fg[fg < threshold] = 0`)."""
    if threshold is None:
        return att
    return att * (att >= threshold).cast(att.dtype)


class PixelAttentionModel(nn.Module):
    """Backbone + pixel attention + projection head + prototypes (PASS stage 2, `train_mode='pixelattn'`).

    Parameter names: `backbone.*`, `fbg.*`, `projection_head.*`, `prototypes.weight`; the last two and the
    backbone match `PASSModel`, so a pretraining checkpoint loads by name (only `fbg.*` stays at init).
    """

    def __init__(
        self,
        depth: int = 50,
        n_prototypes: int = 3000,
        feat_dim: int = 128,
        hidden_dim: Optional[int] = None,
        upsample: int = 4,
        width: float = 1.0,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        self.depth = depth
        self.upsample = upsample
        self.backbone = build_resnet(depth, width=width, stem=stem)
        channels = self.backbone.out_channels[-1]
        hidden = default_hidden_dim(depth) if hidden_dim is None else hidden_dim
        self.fbg = PixelAttention(channels)
        self.projection_head = ProjectionHead(channels, hidden, feat_dim)
        self.prototypes = Prototypes(feat_dim, n_prototypes)

    def upsampled_features(self, x: jt.Var) -> jt.Var:
        """Images N x 3 x H x W -> raw C5 features upsampled x`upsample`: N x C x (H/32*s) x (W/32*s)."""
        return upsample_features(self.backbone(x)[-1], self.upsample)

    def _features_and_attention(self, c5: jt.Var) -> tuple[jt.Var, jt.Var, jt.Var]:
        """C5 -> (raw upsampled, L2-normalised upsampled, per-channel attention)."""
        raw = upsample_features(c5, self.upsample)
        feats = jt.normalize(raw, p=2, dim=1)
        return raw, feats, self.fbg(feats)

    def pixel_features(self, x: jt.Var) -> tuple[jt.Var, jt.Var]:
        """Images -> (L2-normalised features N x C x h x w, attention N x C x h x w in (0, 1)); h = H/32*upsample."""
        _, feats, att = self._features_and_attention(self.backbone(x)[-1])
        return feats, att

    def attention_map(self, x: jt.Var) -> tuple[jt.Var, jt.Var]:
        """Images -> (L2-normalised features N x C x h x w, channel-mean attention N x 1 x h x w) for fg/bg
        thresholding."""
        feats, att = self.pixel_features(x)
        return feats, att.mean(dim=1, keepdims=True)

    def attended_pool(self, c5: jt.Var, threshold: Optional[float] = None) -> jt.Var:
        """C5 maps -> N x C mean of attention-weighted normalised features (the training embedding, unnormalised)."""
        _, feats, att = self._features_and_attention(c5)
        return (feats * _zero_below(att, threshold)).mean(dims=[2, 3])

    def pooled_embedding(self, x: jt.Var, threshold: Optional[float] = None) -> jt.Var:
        """Images -> N x C unit-norm embedding for clustering (PASS `inference_cluster` + k-means L2 normalisation).

        As PASS, the raw upsampled features are weighted by the attention computed on their normalised
        version, averaged over pixels, then L2-normalised.
        """
        raw, _, att = self._features_and_attention(self.backbone(x)[-1])
        pooled = (raw * _zero_below(att, threshold)).mean(dims=[2, 3])
        return jt.normalize(pooled, p=2, dim=1)

    def execute(self, crops: Sequence[jt.Var] | jt.Var) -> tuple[jt.Var, jt.Var]:
        """Crops (list of N x 3 x H x W, equal sizes consecutive) -> (embeddings n_crops*N x D unit-norm,
        scores n_crops*N x K).

        Rows are crop-major: rows [i*N, (i+1)*N) belong to crops[i].
        """
        if isinstance(crops, jt.Var):
            crops = [crops]
        pooled = []
        for start, end in resolution_groups(crops):
            c5 = self.backbone(jt.concat(list(crops[start:end]), dim=0))[-1]
            pooled.append(self.attended_pool(c5))
        embedding = jt.normalize(self.projection_head(jt.concat(pooled, dim=0)), p=2, dim=1)
        return embedding, self.prototypes(embedding)

    def freeze_pretrained(self) -> None:
        """Stop gradients to the backbone and projection head; PASS trains only `fbg` and the prototypes here."""
        for module in (self.backbone, self.projection_head):
            for p in module.parameters():
                p.stop_grad()

    def trainable_parameters(self) -> list[jt.Var]:
        """Parameters PASS optimises in this stage: the attention head and the prototypes (BN buffers excluded)."""
        named = list(self.fbg.named_parameters()) + list(self.prototypes.named_parameters())
        return [p for name, p in named if not name.endswith(("running_mean", "running_var"))]
