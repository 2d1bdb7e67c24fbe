"""PASS pixel-to-pixel loss: symmetric negative cosine between predicted and stop-gradient projected pixels."""
from __future__ import annotations

import jittor as jt

__all__ = ["pixel_to_pixel_loss"]


def pixel_to_pixel_loss(projection: jt.Var, prediction: jt.Var) -> jt.Var:
    """-(mean cos(p_q, sg(z_k)) + mean cos(p_k, sg(z_q))) / 2 over all grid points; minimum -1.

    projection z, prediction p: (2B, C, g, g) pixel embeddings of the two large crops at matching overlap
    points, rows [0, B) crop q (crop 0) and [B, 2B) crop k (crop 1) — `PASSOutput.pixel_projection` /
    `.pixel_prediction` when the model got the grids (`models.heads.sample_overlap`). Points outside the overlap
    (PASS fills their grid with -2) sample zeros and add 0, but still count in the mean, as in PASS.
    """
    n, c = projection.shape[0], projection.shape[1]
    z = jt.normalize(projection.detach().reshape(n, c, -1), p=2, dim=1)
    p = jt.normalize(prediction.reshape(n, c, -1), p=2, dim=1)
    half = n // 2
    cos_qk = (p[:half] * z[half:]).sum(dim=1).mean()
    cos_kq = (p[half:] * z[:half]).sum(dim=1).mean()
    return -(cos_qk + cos_kq) * 0.5
