"""SAM prompt encoder: points and box corners become sparse tokens via random Fourier
features plus learned type embeddings; a low-res mask becomes a dense embedding map."""
import math
from typing import Optional, Tuple

import numpy as np
import jittor as jt
from jittor import nn

from uss.sam.layers import GELU, ActFactory, LayerNorm2d


class PositionEmbeddingRandom(nn.Module):
    """Positional encoding of 2-D coordinates with a fixed random Gaussian frequency matrix."""

    def __init__(self, num_pos_feats: int = 64, scale: Optional[float] = None) -> None:
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        self.positional_encoding_gaussian_matrix = (jt.randn((2, num_pos_feats)) * scale).stop_grad()

    def _encode(self, coords: jt.Var) -> jt.Var:
        """Encode coordinates normalised to [0, 1], shape (..., 2) -> (..., 2F)."""
        coords = coords * 2.0 - 1.0
        proj = jt.matmul(coords, self.positional_encoding_gaussian_matrix) * (2.0 * math.pi)
        return jt.concat([jt.sin(proj), jt.cos(proj)], dim=-1)

    def execute(self, size: Tuple[int, int]) -> jt.Var:
        """Dense encoding of pixel centres of an (h, w) grid, returned as (2F, h, w)."""
        h, w = size
        ys = (np.arange(h, dtype=np.float32) + np.float32(0.5)) / np.float32(h)
        xs = (np.arange(w, dtype=np.float32) + np.float32(0.5)) / np.float32(w)
        grid = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None]), axis=-1).astype(np.float32)
        return self._encode(jt.array(grid)).permute(2, 0, 1)

    def encode_coords(self, coords: jt.Var, image_size: Tuple[int, int]) -> jt.Var:
        """Encode pixel coordinates (B, N, 2) in (x, y) order for an image of size (h, w)."""
        scale = jt.array(np.array([image_size[1], image_size[0]], dtype=np.float32))
        return self._encode(coords.float32() / scale)


class PromptEncoder(nn.Module):
    """Embeds point, box and mask prompts for the mask decoder."""

    num_point_embeddings = 4  # negative point, positive point, box top-left, box bottom-right

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: Tuple[int, int],
        input_image_size: Tuple[int, int],
        mask_in_chans: int,
        act: ActFactory = GELU,
    ) -> None:
        self.embed_dim = embed_dim
        self.input_image_size = tuple(input_image_size)
        self.image_embedding_size = tuple(image_embedding_size)
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(
            [nn.Embedding(1, embed_dim) for _ in range(self.num_point_embeddings)]
        )
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, 2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            act(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, 2, stride=2),
            LayerNorm2d(mask_in_chans),
            act(),
            nn.Conv2d(mask_in_chans, embed_dim, 1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> jt.Var:
        """Positional encoding of the image-embedding grid, shape (1, C, h, w)."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, points: jt.Var, labels: jt.Var, pad: bool) -> jt.Var:
        """Embed (B, N, 2) points with labels 1 (foreground), 0 (background), -1 (padding)."""
        points = points.float32() + 0.5
        labels = labels.int32()
        if pad:
            b = points.shape[0]
            points = jt.concat([points, jt.zeros((b, 1, 2), dtype="float32")], dim=1)
            labels = jt.concat([labels, jt.full((b, 1), -1, dtype="int32")], dim=1)
        emb = self.pe_layer.encode_coords(points, self.input_image_size)
        is_pad = (labels == -1).float32().unsqueeze(-1)
        is_neg = (labels == 0).float32().unsqueeze(-1)
        is_pos = (labels == 1).float32().unsqueeze(-1)
        emb = emb * (1.0 - is_pad)
        emb = emb + is_pad * self.not_a_point_embed.weight.reshape(1, 1, -1)
        emb = emb + is_neg * self.point_embeddings[0].weight.reshape(1, 1, -1)
        emb = emb + is_pos * self.point_embeddings[1].weight.reshape(1, 1, -1)
        return emb

    def _embed_boxes(self, boxes: jt.Var) -> jt.Var:
        """Embed (B, 4) xyxy boxes as two corner tokens each, (B, 2, C)."""
        corners = (boxes.float32() + 0.5).reshape(-1, 2, 2)
        emb = self.pe_layer.encode_coords(corners, self.input_image_size)
        corner_type = jt.concat(
            [self.point_embeddings[2].weight, self.point_embeddings[3].weight], dim=0
        )
        return emb + corner_type.unsqueeze(0)

    @staticmethod
    def _batch_size(
        points: Optional[Tuple[jt.Var, jt.Var]], boxes: Optional[jt.Var], masks: Optional[jt.Var]
    ) -> int:
        """Number of prompts implied by whichever inputs are given."""
        if points is not None:
            return points[0].shape[0]
        if boxes is not None:
            return boxes.shape[0]
        if masks is not None:
            return masks.shape[0]
        return 1

    def execute(
        self,
        points: Optional[Tuple[jt.Var, jt.Var]],
        boxes: Optional[jt.Var],
        masks: Optional[jt.Var],
    ) -> Tuple[jt.Var, jt.Var]:
        """Return sparse (B, N, C) and dense (B, C, h, w) prompt embeddings."""
        bs = self._batch_size(points, boxes, masks)
        sparse_parts = []
        if points is not None:
            coords, labels = points
            sparse_parts.append(self._embed_points(coords, labels, pad=boxes is None))
        if boxes is not None:
            sparse_parts.append(self._embed_boxes(boxes))
        if sparse_parts:
            sparse = sparse_parts[0] if len(sparse_parts) == 1 else jt.concat(sparse_parts, dim=1)
        else:
            sparse = jt.zeros((bs, 0, self.embed_dim), dtype="float32")
        if masks is not None:
            dense = self.mask_downscaling(masks.float32())
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).broadcast((bs, self.embed_dim, h, w))
        return sparse, dense
