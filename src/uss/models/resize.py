"""Separable resampling of feature maps as two matrix products, one per axis: bilinear resizing (torch's
F.interpolate, mode="bilinear", align_corners=False) here, adaptive average pooling in `uss.models.decode_heads`.

jittor's nn.interpolate gathers the four neighbours of every output pixel with index ops; on CPU their forward and
backward took about a fifth of a demo UPerNet step. The resize is separable, so it is also (out_h x h) . map .
(w x out_w) with the weights of `uss.data.imageops.bilinear_matrix`: the same values to float32 rounding
(tests/models/test_resize.py compares both ways, and the gradients), in MKL's matrix products.
"""
from typing import Optional, Sequence

import jittor as jt
import numpy as np

from uss.data.imageops import bilinear_matrix

__all__ = ["resample_separable", "resize_bilinear"]


def resample_separable(x: jt.Var, across: Optional[np.ndarray], down: Optional[np.ndarray]) -> jt.Var:
    """N x C x H x W -> N x C x H' x W': each row times `across` (W x W'), then each column times `down` (H x H');
    None leaves that axis as it is."""
    n, c, h, w = x.shape
    if across is not None:
        w = across.shape[1]
        x = jt.matmul(x.reshape(-1, across.shape[0]), jt.array(np.ascontiguousarray(across, np.float32)))
        x = x.reshape(n, c, h, w)
    if down is not None:
        by_column = x.transpose(0, 1, 3, 2).reshape(-1, down.shape[0])
        x = jt.matmul(by_column, jt.array(np.ascontiguousarray(down, np.float32)))
        x = x.reshape(n, c, w, down.shape[1]).transpose(0, 1, 3, 2)
    return x


def _weights(in_len: int, out_len: int) -> Optional[np.ndarray]:
    """in_len x out_len float32 weights (a row of inputs times this is the resized row); None when the sizes agree."""
    if in_len == out_len:
        return None
    return bilinear_matrix(in_len, out_len, np.float32, np.float32).T


def resize_bilinear(x: jt.Var, size: Sequence[int]) -> jt.Var:
    """N x C x H x W -> N x C x size[0] x size[1], bilinear with half-pixel centres (no antialias); x when already
    that size."""
    return resample_separable(x, _weights(x.shape[3], int(size[1])), _weights(x.shape[2], int(size[0])))
