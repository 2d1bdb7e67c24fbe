"""uss.models.batchnorm against a float64 numpy reference: train-mode forward and backward (input, weight and bias
gradients, with and without the fused ReLU), the unbiased running variance, eval mode, both batch-sum paths (the
CPU kernel and the float64 reductions CUDA uses), and the parameter names of jittor's BatchNorm.

Bounds: the issue's targets. Forward error at most twice PyTorch's (PyTorch: 1.2e-7 relative at mean/std 3,
3.3e-5 at mean/std 100); gradients within 1e-4 of float64 on a ResNet-sized batch. Measured here: forward
1.0e-7 / 1.1e-6, gradients under 1e-7; jittor's own BatchNorm: 5.6e-6 / 6.3e-3 forward, and input gradients
16 % (mean 0.5) and 35 % (mean 2) off on the ResNet-sized batch.
"""
import functools

import numpy as np
import pytest

from tests.helpers import batchnorm_reference

EPS = 1e-5


def _relative(value: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(value.astype(np.float64) - reference).max() / np.abs(reference).max())


def _train_step(bn, x: np.ndarray, dy: np.ndarray, relu: bool = False) -> dict:
    """One train-mode forward and backward of `bn` on x with output gradient dy, as numpy."""
    import jittor as jt

    xv = jt.array(x)
    y = bn(xv, relu=relu)
    wanted = [xv] + ([bn.weight, bn.bias] if bn.affine else [])
    grads = jt.grad((y * jt.array(dy)).sum(), wanted)
    out = {"y": y.numpy(), "dx": grads[0].numpy()}
    if bn.affine:
        out.update(dweight=grads[1].numpy(), dbias=grads[2].numpy())
    return out


def _case(shape, mean: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) + mean).astype(np.float32)
    channels = shape[1]
    weight = rng.uniform(0.5, 1.5, channels).astype(np.float32)
    bias = rng.uniform(-0.5, 0.5, channels).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    return x, weight, bias, dy


def _batchnorm(channels: int, weight=None, bias=None, **options):
    from uss.models.batchnorm import BatchNorm

    bn = BatchNorm(channels, **options)
    if weight is not None:
        bn.weight.assign(weight)
        bn.bias.assign(bias)
    return bn


def test_reference_gradient_matches_finite_differences():
    """The closed-form float64 backward the other tests trust equals central differences of the forward."""
    x, weight, bias, dy = _case((3, 2, 2, 2), mean=1.0)
    x = x.astype(np.float64)
    ref = batchnorm_reference(x, weight, bias, dy, EPS, relu=True)
    h = 1e-6
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        numeric[index] = ((batchnorm_reference(up, weight, bias, dy, EPS, relu=True)["y"]
                           - batchnorm_reference(down, weight, bias, dy, EPS, relu=True)["y"]) * dy).sum() / (2 * h)
    np.testing.assert_allclose(ref["dx"], numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kernel", [True, False], ids=["cpu-kernel", "float64-reductions"])
@pytest.mark.parametrize("mean,forward_bound", [(3.0, 2.4e-7), (100.0, 6.6e-5)])
def test_train_mode_matches_float64(kernel, mean, forward_bound):
    x, weight, bias, dy = _case((8, 16, 10, 10), mean)
    ref = batchnorm_reference(x, weight, bias, dy, EPS)
    bn = _batchnorm(16, weight, bias, kernel=kernel)
    out = _train_step(bn, x, dy)
    assert _relative(out["y"], ref["y"]) <= forward_bound
    for name in ("dx", "dweight", "dbias"):
        assert _relative(out[name], ref[name]) <= 1e-5, name
    # Unbiased running variance (n / (n - 1)), momentum 0.1 from the initial 0 / 1.
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * ref["mean"], rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * ref["unbiased_var"], rtol=1e-6)


@functools.lru_cache(maxsize=2)
def _resnet_sized_case(mean: float):
    """A 32 x 64 x 56 x 56 batch and its float64 reference with ReLU. The output gradient is 0 where the ReLU's
    input is within 1e-4 of its kink: there float32 rounding may flip the ReLU's side against float64's."""
    x, weight, bias, dy = _case((32, 64, 56, 56), mean, seed=1)
    pre_relu = batchnorm_reference(x, weight, bias, dy, EPS)["y"]
    dy = np.where(np.abs(pre_relu) < 1e-4, 0, dy).astype(np.float32)
    return x, weight, bias, dy, batchnorm_reference(x, weight, bias, dy, EPS, relu=True)


@pytest.mark.parametrize("mean", [0.5, 2.0])
@pytest.mark.parametrize("kernel", [True, False], ids=["cpu-kernel", "float64-reductions"])
def test_resnet_sized_batch_with_relu_keeps_gradients_within_1e_4(kernel, mean):
    """BatchNorm2d + ReLU (the fused form ResNet uses) on 32 x 64 x 56 x 56: where jittor's is 16-35 % off."""
    x, weight, bias, dy, ref = _resnet_sized_case(mean)
    out = _train_step(_batchnorm(64, weight, bias, kernel=kernel), x, dy, relu=True)
    assert _relative(out["y"], ref["y"]) <= 2.4e-7
    for name in ("dx", "dweight", "dbias"):
        assert _relative(out[name], ref[name]) <= 1e-4, name


def test_fused_relu_equals_relu_after_batchnorm():
    import jittor as jt

    x, weight, bias, dy = _case((6, 5, 4, 4), 0.3, seed=2)
    fused = _train_step(_batchnorm(5, weight, bias), x, dy, relu=True)
    bn = _batchnorm(5, weight, bias)
    xv = jt.array(x)
    y = jt.nn.relu(bn(xv))
    dx, dweight, dbias = jt.grad((y * jt.array(dy)).sum(), [xv, bn.weight, bn.bias])
    np.testing.assert_allclose(fused["y"], y.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(fused["dx"], dx.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(fused["dweight"], dweight.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused["dbias"], dbias.numpy(), rtol=1e-5, atol=1e-6)


def test_batchnorm1d_without_affine_and_two_steps_of_running_statistics():
    x1, _, _, dy = _case((5, 7), 4.0, seed=3)
    x2 = _case((5, 7), -2.0, seed=4)[0]
    bn = _batchnorm(7, affine=False)
    out = _train_step(bn, x1, dy)
    ones, zeros = np.ones(7), np.zeros(7)
    ref1 = batchnorm_reference(x1, ones, zeros, dy, EPS)
    assert _relative(out["y"], ref1["y"]) <= 2.4e-7
    assert _relative(out["dx"], ref1["dx"]) <= 1e-5
    _train_step(bn, x2, dy)
    ref2 = batchnorm_reference(x2, ones, zeros, dy, EPS)
    expected_mean = 0.9 * (0.1 * ref1["mean"]) + 0.1 * ref2["mean"]
    expected_var = 0.9 * (0.9 + 0.1 * ref1["unbiased_var"]) + 0.1 * ref2["unbiased_var"]
    np.testing.assert_allclose(bn.running_mean.numpy(), expected_mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(bn.running_var.numpy(), expected_var, rtol=1e-6)


def test_eval_mode_uses_running_statistics_precisely():
    import jittor as jt

    x, weight, bias, dy = _case((4, 6, 5, 5), 100.0, seed=5)
    running_mean = np.full(6, 100.0, np.float32) + np.arange(6, dtype=np.float32) * 0.01
    running_var = np.linspace(0.5, 2.0, 6).astype(np.float32)
    bn = _batchnorm(6, weight, bias)
    bn.running_mean.assign(running_mean)
    bn.running_var.assign(running_var)
    bn.eval()
    xv = jt.array(x)
    y = bn(xv)
    dx = jt.grad((y * jt.array(dy)).sum(), xv)
    shape = (1, -1, 1, 1)
    scale = weight.astype(np.float64) / np.sqrt(running_var.astype(np.float64) + EPS)
    expected = (x - running_mean.reshape(shape).astype(np.float64)) * scale.reshape(shape) + bias.reshape(shape)
    assert _relative(y.numpy(), expected) <= 2.4e-7
    assert _relative(dx.numpy(), dy * scale.reshape(shape)) <= 2.4e-7
    np.testing.assert_array_equal(bn.running_var.numpy(), running_var)  # eval leaves the statistics alone


@pytest.mark.parametrize("affine", [True, False])
def test_parameter_names_are_jittors(affine):
    """Checkpoints keep their keys: the same state_dict names (and shapes) as jittor.nn.BatchNorm."""
    from jittor import nn

    ours = _batchnorm(3, affine=affine).state_dict()
    theirs = nn.BatchNorm(3, affine=affine).state_dict()
    assert sorted(ours) == sorted(theirs)
    assert all(tuple(ours[k].shape) == tuple(theirs[k].shape) for k in ours)


def test_one_value_per_channel_in_training_is_a_clear_error():
    import jittor as jt

    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 4\)"):
        _batchnorm(4)(jt.ones((1, 4)))
    with pytest.raises(ValueError, match=r"BatchNorm\(4\).*\(2, 3\)"):
        _batchnorm(4)(jt.ones((2, 3)))
