"""`resize_bilinear` against PyTorch's F.interpolate(mode="bilinear", align_corners=False), the function PASS and
mmsegmentation call: values and gradients, up and down, square and not, from a 1 x 1 map; and a hand-computed row."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import uss  # noqa: F401  (jittor environment first)
from uss.models.resize import resize_bilinear

import jittor as jt

jt.flags.use_cuda = jt.has_cuda


def test_a_row_of_two_upsampled_to_four_has_the_half_pixel_weights():
    row = jt.array(np.array([[[[0.0, 1.0]]]], dtype=np.float32))
    # Output centres 0.5, 1.5, 2.5, 3.5 map to source 0, 0.25, 0.75, 1 (clamped at the ends).
    np.testing.assert_allclose(resize_bilinear(row, (1, 4)).numpy()[0, 0, 0], [0.0, 0.25, 0.75, 1.0], atol=1e-7)


@pytest.mark.parametrize("shape, size", [((2, 3, 8, 8), (32, 32)), ((2, 5, 16, 16), (64, 64)),
                                         ((2, 3, 64, 64), (32, 32)), ((1, 2, 5, 7), (13, 6)),
                                         ((2, 4, 1, 1), (6, 6)), ((1, 3, 9, 4), (9, 4))])
def test_values_and_gradients_equal_torch_interpolate(shape, size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)
    upstream = rng.normal(size=shape[:2] + size).astype(np.float32)
    x_jt = jt.array(x)
    out = resize_bilinear(x_jt, size)
    grad = jt.grad((out * jt.array(upstream)).sum(), x_jt)
    x_pt = torch.tensor(x, requires_grad=True)
    out_pt = F.interpolate(x_pt, size=size, mode="bilinear", align_corners=False)
    (out_pt * torch.tensor(upstream)).sum().backward()
    assert tuple(out.shape) == tuple(out_pt.shape)
    np.testing.assert_allclose(out.numpy(), out_pt.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad.numpy(), x_pt.grad.numpy(), rtol=1e-5, atol=1e-5)
