"""Dense CRF: the permutohedral filter against a brute-force Gaussian, and mean-field inference sharpening a noisy
boundary onto the colour edge."""
import numpy as np
import pytest

from uss.crf import DenseCrf, Lattice


def test_lattice_filter_approximates_the_gaussian_it_stands_for():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(500, 5)) * 1.5
    values = rng.normal(size=(500, 3))
    lattice = Lattice(features)
    weights = np.exp(-((features[:, None] - features[None]) ** 2).sum(-1) / 2)  # exact, O(N^2)
    approx = lattice.filter(values) / lattice.filter(np.ones((500, 1)))
    exact = weights @ values / weights.sum(1, keepdims=True)
    assert np.corrcoef(approx.ravel(), exact.ravel())[0, 1] > 0.95
    # Normalised, a constant stays that constant; far-apart groups do not mix.
    assert np.allclose(lattice.filter(np.full((500, 1), 3.0)) / lattice.filter(np.ones((500, 1))), 3.0)
    apart = np.concatenate([np.zeros((50, 2)), np.full((50, 2), 40.0)])
    split = Lattice(apart).filter(np.concatenate([np.ones(50), np.zeros(50)])[:, None])
    assert split[:50].min() > 0 and np.abs(split[50:]).max() < 1e-9


def two_regions(rng, height=48, width=80, edge=40):
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :edge] = (40, 90, 160)
    image[:, edge:] = (190, 170, 60)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    truth = np.zeros((height, width), np.int32)
    truth[:, edge:] = 1
    return image, truth


def test_crf_removes_label_noise_and_snaps_a_boundary_to_the_colour_edge():
    rng = np.random.default_rng(1)
    image, truth = two_regions(rng)
    noisy = truth.copy()
    flip = rng.random(truth.shape) < 0.2
    noisy[flip] = 1 - noisy[flip]
    refined = DenseCrf().refine_labels(image, noisy, 2)
    assert (noisy == truth).mean() < 0.82 and (refined == truth).mean() > 0.99
    # A boundary predicted 5 px off (as a low-resolution prediction upsampled), onto the edge the colours show.
    shifted = np.zeros_like(truth)
    shifted[:, 45:] = 1
    snapped = DenseCrf().refine_labels(image, shifted, 2)
    assert (shifted == truth).mean() < 0.94 and (snapped == truth).mean() > 0.99


def test_refine_returns_marginals_and_checks_sizes():
    rng = np.random.default_rng(2)
    image, truth = two_regions(rng, 16, 20, 10)
    probabilities = rng.dirichlet(np.ones(3), size=(16, 20)).transpose(2, 0, 1)
    marginals = DenseCrf(iterations=2).refine(image, probabilities)
    assert marginals.shape == probabilities.shape and np.allclose(marginals.sum(0), 1.0)
    with pytest.raises(ValueError, match="differ in size"):
        DenseCrf().refine(image[:8], probabilities)
    assert np.array_equal(DenseCrf(iterations=0).refine_labels(image, truth, 2), truth)  # no inference: unaries
