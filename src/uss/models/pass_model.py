"""PASS pretraining model (backbone + SwAV, deep-to-shallow and pixel-to-pixel heads) and the model factory."""
from __future__ import annotations

import re
from typing import Any, NamedTuple, Optional, Sequence

import jittor as jt
from jittor import nn

from uss.models.heads import (
    ConvProjectionHead,
    DeepToShallowHead,
    PixelPredictorHead,
    ProjectionHead,
    Prototypes,
    default_hidden_dim,
    sample_overlap,
)
from uss.models.multicrop import resolution_groups
from uss.models.pixel_attention import PixelAttentionModel
from uss.models.resnet import build_resnet

__all__ = ["PASSOutput", "PASSModel", "build_model", "arch_depth"]


class PASSOutput(NamedTuple):
    """What the PASS losses need from one multi-crop forward pass (B = images per crop, D = feat_dim,
    K = prototypes)."""

    embedding: jt.Var  # (n_crops*B, D) unit rows, crop-major: rows [i*B, (i+1)*B) are crop i
    scores: jt.Var  # (n_crops*B, K) embedding @ prototypes^T
    shallow_embeddings: list[jt.Var]  # one (2B, D) unit-row tensor per shallow stage, large crops only
    shallow_scores: list[jt.Var]  # one (2B, K) per shallow stage, computed with detached prototypes (as PASS)
    pixel_projection: jt.Var  # (2B, D, g, g) sampled at the overlap grids, or (2B, D, h, w) without grids
    pixel_prediction: jt.Var  # same shape, predictor applied to pixel_projection


class PASSModel(nn.Module):
    """PASS pretraining network (`train_mode='pretrain'` in LUSSeg/PASS).

    Deep branch: C5 of every crop -> global average pool -> ProjectionHead -> L2 norm -> prototypes.
    Deep-to-shallow branch (per stage s in `shallow_stages`, PASS default s=3 i.e. layer3/C4): large crops'
    stage-s map -> conv MLP (C->hidden->hidden->C) -> pool -> ProjectionHead -> L2 norm -> scores with
    detached prototypes.
    Pixel branch: large crops' C5 map -> conv MLP (C5->hidden->hidden->D) -> grid-sample at the overlap
    grids -> predictor (D->D->D). Sampling happens before the predictor, as in PASS.
    """

    def __init__(
        self,
        depth: int = 50,
        n_prototypes: int = 3000,
        feat_dim: int = 128,
        hidden_dim: Optional[int] = None,
        shallow_stages: Sequence[int] = (3,),
        zero_init_residual: bool = False,
        n_large_crops: int = 2,
        width: float = 1.0,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        if any(s not in (1, 2, 3) for s in shallow_stages):
            raise ValueError(f"shallow stages must be in 1..3, got {shallow_stages}")
        self.depth = depth
        self.feat_dim = feat_dim
        self.n_large_crops = n_large_crops
        self.shallow_stages = tuple(shallow_stages)
        self.backbone = build_resnet(depth, zero_init_residual=zero_init_residual, width=width, stem=stem)
        channels = self.backbone.out_channels
        hidden = default_hidden_dim(depth) if hidden_dim is None else hidden_dim
        self.hidden_dim = hidden
        self.projection_head = ProjectionHead(channels[3], hidden, feat_dim)
        self.prototypes = Prototypes(feat_dim, n_prototypes)
        for stage in self.shallow_stages:
            setattr(self, f"shallow_head{stage}", DeepToShallowHead(channels[stage - 1], hidden, feat_dim))
        self.projection_head_pixel = ConvProjectionHead(channels[3], hidden, feat_dim)
        self.predictor_head_pixel = PixelPredictorHead(feat_dim)

    def shallow_head(self, stage: int) -> DeepToShallowHead:
        """The deep-to-shallow head of a stage (1..3)."""
        return getattr(self, f"shallow_head{stage}")

    def execute(
        self,
        crops: Sequence[jt.Var] | jt.Var,
        grid_q: Optional[jt.Var] = None,
        grid_k: Optional[jt.Var] = None,
    ) -> PASSOutput:
        """Multi-crop forward.

        crops: list of B x 3 x H_i x W_i tensors, the `n_large_crops` (2) large crops first, crops of equal size
        consecutive (e.g. 2 x 224 then 6 x 96). grid_q / grid_k: (B, g, g, 2) overlap grids of crop 0 / crop 1
        (see `heads.sample_overlap`); both or neither.
        """
        if isinstance(crops, jt.Var):
            crops = [crops]
        if (grid_q is None) != (grid_k is None):
            raise ValueError("pass both grid_q and grid_k, or neither")
        batch = crops[0].shape[0]
        n_large = self.n_large_crops * batch
        pooled = []
        for start, end in resolution_groups(crops):
            c2, c3, c4, c5 = self.backbone(jt.concat(list(crops[start:end]), dim=0))
            if start == 0:
                if c5.shape[0] < n_large:
                    raise ValueError(f"the first {self.n_large_crops} crops must share one resolution")
                stage_maps = (c2, c3, c4)
                shallow_embeddings = [
                    self.shallow_head(s)(stage_maps[s - 1][:n_large]) for s in self.shallow_stages
                ]
                pixel_projection = self.projection_head_pixel(c5[:n_large])
                if grid_q is not None:
                    pixel_projection = sample_overlap(pixel_projection, grid_q, grid_k)
                pixel_prediction = self.predictor_head_pixel(pixel_projection)
            pooled.append(c5.mean(dims=[2, 3]))
        embedding = jt.normalize(self.projection_head(jt.concat(pooled, dim=0)), p=2, dim=1)
        return PASSOutput(
            embedding=embedding,
            scores=self.prototypes(embedding),
            shallow_embeddings=shallow_embeddings,
            shallow_scores=[self.prototypes.scores(z, detach_weight=True) for z in shallow_embeddings],
            pixel_projection=pixel_projection,
            pixel_prediction=pixel_prediction,
        )


def arch_depth(arch: str) -> int:
    """'resnet18' -> 18 (also 34, 50, 101)."""
    match = re.fullmatch(r"resnet(\d+)", arch)
    if match is None:
        raise ValueError(f"unknown arch {arch!r}; expected resnet18/34/50/101")
    return int(match.group(1))


def build_model(arch: str = "resnet50", stage: str = "pretrain", **kwargs: Any) -> PASSModel | PixelAttentionModel:
    """Model for a PASS stage: 'pretrain' -> PASSModel, 'pixel_attention' -> PixelAttentionModel.

    kwargs go to the model (n_prototypes, feat_dim, hidden_dim, the backbone's width and stem, and for
    pretraining shallow_stages, zero_init_residual); hidden_dim defaults to 512 for ResNet-18/34 and 2048 for
    ResNet-50/101.
    """
    depth = arch_depth(arch)
    if stage == "pretrain":
        return PASSModel(depth=depth, **kwargs)
    if stage == "pixel_attention":
        return PixelAttentionModel(depth=depth, **kwargs)
    raise ValueError(f"unknown stage {stage!r}; expected 'pretrain' or 'pixel_attention'")
