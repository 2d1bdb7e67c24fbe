"""LARC against a float64 transcription of apex.parallel.LARC (clip=False) followed by torch-style momentum SGD."""
import argparse

import numpy as np
import pytest

from uss.options import optimisation, optimiser_settings
from uss.training.optim import LARC, build_optimizer  # imports uss first

import jittor as jt


def apex_larc_sgd(weights, grads, buffers, lr, momentum, wd, trust, eps=1e-8):
    """One step of SwAV's optimiser: apex LARC rescales each gradient, then SGD (its weight decay set to 0)."""
    new_weights, new_buffers = [], []
    for w, g, v in zip(weights, grads, buffers):
        w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
        if w_norm != 0 and g_norm != 0:
            g = (g + wd * w) * (trust * w_norm / (g_norm + w_norm * wd + eps))
        v = momentum * v + g
        new_buffers.append(v)
        new_weights.append(w - lr * v)
    return new_weights, new_buffers


def test_larc_matches_apex_formula_over_three_steps():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4))
    y = rng.normal(size=(6, 3))
    w0 = rng.normal(size=(4, 3))
    weight, bias = jt.array(w0.astype(np.float32)), jt.zeros(3)  # zero bias: LARC leaves its gradient alone
    lr, momentum, wd, trust = 0.5, 0.9, 1e-2, 0.02
    optimizer = LARC([weight, bias], lr=lr, momentum=momentum, weight_decay=wd, trust_coefficient=trust)
    ref_w, ref_b = w0.copy(), np.zeros(3)
    buffers = [np.zeros_like(ref_w), np.zeros_like(ref_b)]
    xj, yj = jt.array(x.astype(np.float32)), jt.array(y.astype(np.float32))
    for _ in range(3):
        loss = ((jt.matmul(xj, weight) + bias - yj) ** 2).sum()
        optimizer.step(loss)
        residual = x @ ref_w + ref_b - y  # d/dW sum(r^2) = 2 x^T r, d/db = 2 sum_rows(r)
        grads = [2 * x.T @ residual, 2 * residual.sum(axis=0)]
        (ref_w, ref_b), buffers = apex_larc_sgd([ref_w, ref_b], grads, buffers, lr, momentum, wd, trust)
        np.testing.assert_allclose(weight.numpy(), ref_w, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(bias.numpy(), ref_b, rtol=1e-4, atol=1e-5)
    # The weight moved by about lr * trust * |w| per step, far less than the raw gradient would move it.
    assert 0 < np.linalg.norm(weight.numpy() - w0) < 3 * 3 * lr * trust * np.linalg.norm(w0)


def test_build_optimizer_picks_larc_only_when_asked():
    parser = argparse.ArgumentParser(parents=[optimisation(epochs=5)])
    plain = parser.parse_args([])
    assert plain.epochs == 5 and plain.larc == 0.0
    param = jt.ones(2)
    assert type(build_optimizer([param], optimiser_settings(plain))) is jt.optim.SGD
    larc = build_optimizer([param], optimiser_settings(parser.parse_args(["--larc", "0.001", "--momentum", "0.8"])))
    assert isinstance(larc, LARC) and larc.trust_coefficient == 0.001 and larc.momentum == 0.8


def test_poly_schedule_is_mmsegmentations_and_cosine_stays_the_default():
    from uss.training.schedule import build_schedule, warmup_cosine, warmup_poly

    # mmsegmentation PolyLrUpdaterHook(power=0.9, min_lr=1e-4, by_epoch=False): (0.01 - 1e-4) * (1 - t/T)^0.9 + 1e-4
    lrs = warmup_poly(0.01, 1e-4, epochs=2, iters_per_epoch=5, power=0.9)
    assert len(lrs) == 10
    assert lrs[0] == 0.01
    assert lrs[5] == pytest.approx((0.01 - 1e-4) * 0.5 ** 0.9 + 1e-4, rel=1e-12)
    assert lrs[9] == pytest.approx((0.01 - 1e-4) * 0.1 ** 0.9 + 1e-4, rel=1e-12)
    assert (np.diff(lrs) < 0).all()
    parser = argparse.ArgumentParser(parents=[optimisation(epochs=3)])
    default = parser.parse_args([])
    assert default.schedule == "cosine" and default.poly_power == 0.9
    assert np.array_equal(build_schedule(optimiser_settings(default), default.epochs, 4),
                          warmup_cosine(0.6, 0.0006, 3, 4))
    poly = parser.parse_args(["--schedule", "poly", "--base-lr", "0.01", "--final-lr", "1e-4", "--warmup-epochs", "1"])
    lrs = build_schedule(optimiser_settings(poly), poly.epochs, 4)
    assert np.allclose(lrs[:4], [0, 0.0025, 0.005, 0.0075])  # linear warm-up to base_lr
    assert np.array_equal(lrs[4:], warmup_poly(0.01, 1e-4, 2, 4, 0.9))
