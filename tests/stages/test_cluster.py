"""Clustering k-means (faiss, PASS's settings): blobs recovered, objective against scikit-learn's, seeded runs
identical across processes, memory-mapped input, restarts kept by lowest objective, CLI flags."""
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from uss.clustering import kmeans
from uss.stages.cluster import build_parser


def blobs(n_per=200, k=6, dim=16, spread=0.05, seed=0):
    """k well-separated unit-norm clusters (as the L2-normalised embeddings), with their true labels."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim))
    points = np.repeat(centres, n_per, axis=0) + spread * rng.standard_normal((k * n_per, dim))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32), np.repeat(np.arange(k), n_per)


def test_blobs_are_recovered_and_labels_are_nearest_centroids():
    x, truth = blobs()
    centroids, labels, objective = kmeans(x, 6, restarts=5, iterations=20, seed=31)
    assert centroids.shape == (6, 16) and centroids.dtype == np.float32 and labels.shape == (len(x),)
    assert normalized_mutual_info_score(truth, labels) == pytest.approx(1.0)
    distances = ((x[:, None, :] - centroids[None]) ** 2).sum(-1)
    assert (labels == distances.argmin(1)).all()
    # faiss reports the objective of its last assignment step: within a Lloyd update of the final one
    final = distances.min(1).sum()
    assert final <= objective * (1 + 1e-4) and objective == pytest.approx(final, rel=0.05)


def test_objective_matches_scikit_learn_on_harder_data():
    # Overlapping clusters: faiss (10 restarts x 30 Lloyd steps) reaches scikit-learn's objective within 1%.
    x, _ = blobs(n_per=150, k=8, dim=8, spread=0.6, seed=1)
    centroids, labels, _ = kmeans(x, 8, restarts=10, iterations=30, seed=0)
    ours = ((x - centroids[labels]) ** 2).sum()
    reference = KMeans(n_clusters=8, n_init=10, max_iter=300, random_state=0).fit(x).inertia_
    assert ours <= reference * 1.01


def test_more_restarts_never_worse():
    x, _ = blobs(n_per=100, k=10, dim=8, spread=0.8, seed=2)
    one = kmeans(x, 10, restarts=1, iterations=10, seed=5)[2]
    many = kmeans(x, 10, restarts=8, iterations=10, seed=5)[2]
    assert many <= one + 1e-6


def test_memory_mapped_input_gives_the_in_memory_result(tmp_path):
    x, _ = blobs(seed=3)
    path = str(tmp_path / "embeddings.npy")
    np.save(path, x)
    mapped = np.load(path, mmap_mode="r")
    assert isinstance(mapped, np.memmap) and not mapped.flags["WRITEABLE"]
    a = kmeans(mapped, 6, restarts=3, iterations=10, seed=7)
    b = kmeans(x, 6, restarts=3, iterations=10, seed=7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


SCRIPT = """
import sys, numpy as np
from uss.clustering import kmeans
rng = np.random.default_rng(0)
x = rng.standard_normal((3000, 32)).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
c, labels, obj = kmeans(x, 20, restarts=4, iterations=15, seed=int(sys.argv[1]))
sys.stdout.write(c.tobytes().hex()[:4000] + " " + str(labels[:50].tolist()) + " " + repr(obj))
"""


def test_seeded_runs_are_identical_across_processes():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    run = lambda seed: subprocess.run([sys.executable, "-c", SCRIPT, str(seed)], capture_output=True, text=True,  # noqa: E731
                                      timeout=300, env=env, check=True).stdout
    first, second, other = run(31), run(31), run(32)
    assert first == second
    assert first != other


def test_too_few_embeddings_is_an_error():
    with pytest.raises(ValueError, match="at least k=5"):
        kmeans(np.zeros((3, 4), np.float32), 5, restarts=1, iterations=1, seed=0)


def test_cli_defaults_are_pass_settings_and_demo_flags_parse():
    base = ["--data", "d", "--pretrained", "p", "--dump-path", "o"]
    defaults = build_parser().parse_args(base)
    assert (defaults.restarts, defaults.iterations) == (30, 20)  # PASS cluster.py: nredo 30, niter 20
    demo = build_parser().parse_args(base + ["--restarts", "10", "--iterations", "50"])
    assert (demo.restarts, demo.iterations) == (10, 50)
