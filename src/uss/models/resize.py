"""Bilinear resizing of feature maps (torch's F.interpolate, mode="bilinear", align_corners=False) as two matrix
products, one per axis.

jittor's nn.interpolate gathers the four neighbours of every output pixel with index ops; on CPU their forward and
backward took about a fifth of a demo UPerNet step. The resize is separable, so it is also (out_h x h) . map .
(w x out_w) with the weights of `uss.data.imageops.bilinear_matrix`: the same values to float32 rounding
(tests/models/test_resize.py compares both ways, and the gradients), in MKL's matrix products.
"""
from typing import Sequence

import jittor as jt
import numpy as np

from uss.data.imageops import bilinear_matrix

__all__ = ["resize_bilinear"]


def _weights(in_len: int, out_len: int) -> jt.Var:
    """in_len x out_len float32 weights: a row of inputs times this is the resized row."""
    return jt.array(np.ascontiguousarray(bilinear_matrix(in_len, out_len, np.float32, np.float32).T))


def resize_bilinear(x: jt.Var, size: Sequence[int]) -> jt.Var:
    """N x C x H x W -> N x C x size[0] x size[1], bilinear with half-pixel centres (no antialias); x when already
    that size."""
    n, c, h, w = x.shape
    out_h, out_w = int(size[0]), int(size[1])
    if w != out_w:
        x = jt.matmul(x.reshape(n * c * h, w), _weights(w, out_w)).reshape(n, c, h, out_w)
    if h != out_h:
        by_column = x.transpose(0, 1, 3, 2).reshape(n * c * out_w, h)
        x = jt.matmul(by_column, _weights(h, out_h)).reshape(n, c, out_w, out_h).transpose(0, 1, 3, 2)
    return x
