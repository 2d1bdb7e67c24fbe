"""PASS/SwAV heads: projection MLP, prototypes, deep-to-shallow head, pixel projection/predictor heads."""
from __future__ import annotations

import jittor as jt
from jittor import nn

from uss.models.batchnorm import BatchNorm1d, BatchNorm2d
from uss.models.resnet import kaiming_init_convs

__all__ = [
    "default_hidden_dim",
    "ProjectionHead",
    "Prototypes",
    "ConvProjectionHead",
    "PixelPredictorHead",
    "DeepToShallowHead",
    "sample_overlap",
]


def default_hidden_dim(depth: int) -> int:
    """Hidden width of the projection MLPs used by PASS: 512 for ResNet-18/34, 2048 for ResNet-50/101."""
    return 512 if depth < 50 else 2048


class ProjectionHead(nn.Sequential):
    """Linear(in,hidden)-BN1d-ReLU-Linear(hidden,out)-BN1d(affine=False), as PASS; hidden_dim=0 gives one Linear."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int = 128, final_bn: bool = True) -> None:
        if hidden_dim == 0:
            layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
        else:
            layers = [nn.Linear(in_dim, hidden_dim), BatchNorm1d(hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim)]
            if final_bn:
                layers.append(BatchNorm1d(out_dim, affine=False))
        super().__init__(*layers)


class Prototypes(nn.Linear):
    """Prototype matrix (n_prototypes x dim, no bias); `execute(z)` gives the scores z @ W^T."""

    def __init__(self, dim: int, n_prototypes: int) -> None:
        super().__init__(dim, n_prototypes, bias=False)

    def normalize_prototypes(self) -> None:
        """L2-normalise each prototype (row of the weight) in place; called before every training step."""
        # Not under jt.no_grad(): an assign there would also mark the weight stop-grad (untrainable).
        self.weight.assign(jt.normalize(self.weight.detach(), p=2, dim=1))

    def scores(self, z: jt.Var, detach_weight: bool = False) -> jt.Var:
        """Scores z @ W^T; with detach_weight no gradient reaches the prototypes (PASS deep-to-shallow head)."""
        weight = self.weight.detach() if detach_weight else self.weight
        return nn.matmul_transpose(z, weight)


class ConvProjectionHead(nn.Sequential):
    """1x1-conv MLP: conv-BN-ReLU-conv-BN-ReLU-conv-BN(affine=False), convs without bias (PASS pixel heads)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(
            nn.Conv2d(in_dim, hidden_dim, 1, bias=False),
            BatchNorm2d(hidden_dim),
            nn.ReLU(),
            nn.Conv2d(hidden_dim, hidden_dim, 1, bias=False),
            BatchNorm2d(hidden_dim),
            nn.ReLU(),
            nn.Conv2d(hidden_dim, out_dim, 1, bias=False),
            BatchNorm2d(out_dim, affine=False),
        )
        kaiming_init_convs(self)


class PixelPredictorHead(nn.Sequential):
    """Pixel predictor: conv1x1(no bias)-BN-ReLU-conv1x1(with bias), dim -> dim (PASS `predictor_head_pixel`)."""

    def __init__(self, dim: int = 128) -> None:
        super().__init__(
            nn.Conv2d(dim, dim, 1, bias=False),
            BatchNorm2d(dim),
            nn.ReLU(),
            nn.Conv2d(dim, dim, 1),
        )
        kaiming_init_convs(self)


class DeepToShallowHead(nn.Module):
    """PASS shallow branch: conv MLP on a shallow stage map (C->hidden->hidden->C), global pool, MLP to out_dim,
    L2 norm."""

    def __init__(self, in_channels: int, hidden_dim: int, out_dim: int = 128) -> None:
        super().__init__()
        self.pixel = ConvProjectionHead(in_channels, hidden_dim, in_channels)
        self.projection = ProjectionHead(in_channels, hidden_dim, out_dim)

    def execute(self, feature_map: jt.Var) -> jt.Var:
        """N x C x h x w stage map -> N x out_dim unit-norm embedding."""
        pooled = self.pixel(feature_map).mean(dims=[2, 3])
        return jt.normalize(self.projection(pooled), p=2, dim=1)


def sample_overlap(maps: jt.Var, grid_q: jt.Var, grid_k: jt.Var) -> jt.Var:
    """Bilinearly sample the overlap grids from the two large crops' maps.

    maps: (2B, C, h, w), rows [0, B) from crop q (crop 0) and [B, 2B) from crop k (crop 1).
    grid_q, grid_k: (B, g, g, 2), (x, y) in [-1, 1] in each crop's own frame (x = width axis);
    align_corners=False and zero padding as PASS, so no-overlap grids (filled with -2) sample zeros.
    Returns (2B, C, g, g).
    """
    grid = jt.concat([grid_q, grid_k], dim=0)
    if grid.dtype != maps.dtype:
        grid = grid.cast(maps.dtype)
    return nn.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

