"""Tests for Sinkhorn-Knopp, the SwAV / deep-to-shallow losses, the pixel-to-pixel loss and MPI helpers."""
import math

import numpy as np
import pytest

from uss.losses import (  # imports uss first: sets jittor's environment
    EmbeddingQueue,
    combine_pass_losses,
    deep_to_shallow_loss,
    pixel_to_pixel_loss,
    sinkhorn,
    swapped_prediction_loss,
    swav_codes,
)
from uss import distributed
from uss.models.heads import sample_overlap

import jittor as jt

jt.flags.use_cuda = jt.has_cuda


def np_sinkhorn(scores: np.ndarray, eps: float, n_iters: int) -> np.ndarray:
    """Direct float64 transcription of SwAV's Sinkhorn-Knopp."""
    q = np.exp(scores / eps).T
    q = q / q.sum()
    k, b = q.shape
    for _ in range(n_iters):
        q = q / q.sum(axis=1, keepdims=True) / k
        q = q / q.sum(axis=0, keepdims=True) / b
    return (q * b).T


def cosine_scores(n: int, k: int, seed: int = 0) -> np.ndarray:
    """Scores of unit embeddings against unit prototypes, as in training (values in [-1, 1])."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 16))
    c = rng.normal(size=(k, 16))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    return (z @ c.T).astype("float32")


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def test_sinkhorn_matches_numpy():
    scores = cosine_scores(8, 4)
    for n_iters in (1, 3):
        q = sinkhorn(jt.array(scores), epsilon=0.05, n_iters=n_iters).numpy()
        np.testing.assert_allclose(q, np_sinkhorn(scores.astype(np.float64), 0.05, n_iters), rtol=2e-4, atol=1e-6)


def test_sinkhorn_marginals():
    b, k = 8, 4
    scores = cosine_scores(b, k, seed=1)
    # The last step normalises samples (columns of the K x B matrix) to 1/B, so after the final x B every
    # sample's code sums to exactly 1; the prototype marginal (B/K each) holds only approximately.
    q3 = sinkhorn(jt.array(scores), epsilon=0.05, n_iters=3).numpy()
    np.testing.assert_allclose(q3.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(q3 >= 0)
    err3 = np.abs(q3.sum(axis=0) - b / k).max()
    # With many iterations both marginals hold: equipartition over prototypes.
    q100 = sinkhorn(jt.array(scores), epsilon=0.05, n_iters=100).numpy()
    np.testing.assert_allclose(q100.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(q100.sum(axis=0), b / k, rtol=1e-4)
    assert np.abs(q100.sum(axis=0) - b / k).max() < err3
    # no gradient flows through the codes
    assert sinkhorn(jt.array(scores)).is_stop_grad()


def test_sinkhorn_two_fake_ranks_equal_concatenated_batch():
    scores = cosine_scores(10, 5, seed=2)
    n_iters = 3

    # Reference: one process holding the whole batch; record every value the all-reduce returns.
    reduced_full: list[np.ndarray] = []

    def record(x: jt.Var) -> jt.Var:
        reduced_full.append(x.numpy().copy())
        return x

    q_full = sinkhorn(jt.array(scores), n_iters=n_iters, all_reduce=record, world_size=1).numpy()

    # Two ranks with half the batch each. In lock-step, call c of each rank receives the sum of both ranks'
    # local values at call c; feed that value back and check it is exactly local_0 + local_1.
    halves = np.split(scores, 2)
    local_values: list[list[np.ndarray]] = [[], []]
    q_ranks = []
    for r, half in enumerate(halves):
        calls = iter(range(len(reduced_full)))

        def fake_all_reduce(x: jt.Var, r: int = r, calls=calls) -> jt.Var:
            local_values[r].append(x.numpy().copy())
            return jt.array(reduced_full[next(calls)])

        q_ranks.append(sinkhorn(jt.array(half), n_iters=n_iters, all_reduce=fake_all_reduce, world_size=2).numpy())

    assert len(local_values[0]) == len(local_values[1]) == len(reduced_full) == 1 + n_iters
    for local_0, local_1, total in zip(local_values[0], local_values[1], reduced_full):
        np.testing.assert_allclose(local_0 + local_1, total, rtol=1e-5)
    np.testing.assert_allclose(np.concatenate(q_ranks), q_full, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(q_full, np_sinkhorn(scores.astype(np.float64), 0.05, n_iters), rtol=2e-4, atol=1e-6)


def test_swapped_prediction_loss_hand_computed():
    # With T = 0.1, scores = 0.1 * ln(p) make softmax(scores / T) = p exactly.
    t = 0.1
    p_crop0 = np.array([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]])
    p_crop1 = np.array([[0.25, 0.25, 0.5], [0.5, 0.25, 0.25]])
    scores = jt.array((t * np.log(np.concatenate([p_crop0, p_crop1]))).astype("float32"))
    q0 = np.array([[1.0, 0, 0], [0, 1.0, 0]])  # codes of crop 0
    q1 = np.array([[0, 0, 1.0], [0, 1.0, 0]])  # codes of crop 1
    codes = [jt.array(q0.astype("float32")), jt.array(q1.astype("float32"))]
    # crop 1 predicts q0: -ln p_crop1[0,0] = ln 4, -ln p_crop1[1,1] = ln 4 -> mean 2 ln 2
    # crop 0 predicts q1: -ln p_crop0[0,2] = ln 4, -ln p_crop0[1,1] = ln 2 -> mean 1.5 ln 2
    expected = (2 * math.log(2) + 1.5 * math.log(2)) / 2
    loss = swapped_prediction_loss(scores, codes, batch_size=2, crops_for_assign=(0, 1), temperature=t)
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-5)


def test_swapped_prediction_loss_multi_crop_against_numpy():
    rng = np.random.default_rng(3)
    b, k, n_crops, t = 2, 3, 4, 0.1
    scores = rng.normal(size=(n_crops * b, k)).astype("float32")
    codes = [rng.dirichlet(np.ones(k), size=b).astype("float32") for _ in range(2)]
    expected = 0.0
    for q, crop in zip(codes, (0, 1)):
        sub = sum(
            -(q * log_softmax(scores[v * b : (v + 1) * b] / t)).sum(axis=1).mean() for v in range(n_crops) if v != crop
        )
        expected += sub / (n_crops - 1)
    expected /= 2
    loss = swapped_prediction_loss(jt.array(scores), [jt.array(q) for q in codes], batch_size=b, temperature=t)
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-5)


def test_deep_to_shallow_loss_hand_computed():
    t = 0.1
    p_shallow0 = np.array([[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]])
    p_shallow1 = np.array([[0.25, 0.5, 0.25], [0.5, 0.25, 0.25]])
    shallow = jt.array((t * np.log(np.concatenate([p_shallow0, p_shallow1]))).astype("float32"))
    q0 = np.array([[0, 1.0, 0], [1.0, 0, 0]])
    q1 = np.array([[1.0, 0, 0], [0, 0, 1.0]])
    # the other crop's shallow output predicts the deep codes: crop 1 -> q0: ln 2, ln 2; crop 0 -> q1: ln 2, ln 2
    loss = deep_to_shallow_loss(shallow, [jt.array(q0.astype("float32")), jt.array(q1.astype("float32"))], 2)
    np.testing.assert_allclose(loss.item(), math.log(2), rtol=1e-5)
    # codes for crop 0 scored against crop 0's own shallow output would give ln 4 + ln 4: not what PASS does
    q_same = [jt.array(np.array([[0, 1.0, 0], [1.0, 0, 0]], dtype="float32"))]
    loss_crop0_only = deep_to_shallow_loss(shallow, q_same, 2, crops_for_assign=(0,))
    np.testing.assert_allclose(loss_crop0_only.item(), math.log(2), rtol=1e-5)


def test_embedding_queue_and_codes():
    b, k, d = 2, 3, 4
    rng = np.random.default_rng(4)
    protos = rng.normal(size=(k, d)).astype("float32")
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    queue = EmbeddingQueue(n_assign=2, length=4, dim=d)

    def batch(seed: int) -> tuple[np.ndarray, np.ndarray]:
        emb = np.random.default_rng(seed).normal(size=(2 * b, d)).astype("float32")
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        return emb, emb @ protos.T

    emb1, sc1 = batch(10)
    codes = swav_codes(jt.array(sc1), jt.array(emb1), jt.array(protos), b, queue=queue)
    assert not queue.in_use  # an unfilled queue is not used
    np.testing.assert_allclose(codes[1].numpy(), np_sinkhorn(sc1[b:].astype(np.float64), 0.05, 3), rtol=2e-4, atol=1e-6)
    emb2, sc2 = batch(11)
    swav_codes(jt.array(sc2), jt.array(emb2), jt.array(protos), b, queue=queue)
    # newest first: queue 0 holds crop 0 of batch 2 then crop 0 of batch 1
    np.testing.assert_allclose(queue.queue[0].numpy(), np.concatenate([emb2[:b], emb1[:b]]), rtol=1e-6)
    np.testing.assert_allclose(queue.queue[1].numpy(), np.concatenate([emb2[b:], emb1[b:]]), rtol=1e-6)
    emb3, sc3 = batch(12)
    codes = swav_codes(jt.array(sc3), jt.array(emb3), jt.array(protos), b, queue=queue)
    assert queue.in_use
    joint = np.concatenate([np.concatenate([emb2[:b], emb1[:b]]) @ protos.T, sc3[:b]]).astype(np.float64)
    np.testing.assert_allclose(codes[0].numpy(), np_sinkhorn(joint, 0.05, 3)[-b:], rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(codes[0].numpy().sum(axis=1), 1.0, rtol=1e-5)

    restored = EmbeddingQueue(2, 4, d)
    restored.load_state_dict(queue.state_dict())
    np.testing.assert_array_equal(restored.queue.numpy(), queue.queue.numpy())


def test_pixel_loss_identical_views_and_gradients():
    rng = np.random.default_rng(5)
    b, c, g = 2, 8, 3
    half = rng.normal(size=(b, c, g, g)).astype("float32")
    maps = np.concatenate([half, half])
    loss = pixel_to_pixel_loss(jt.array(maps), jt.array(maps))
    np.testing.assert_allclose(loss.item(), -1.0, rtol=1e-5)
    # orthogonal prediction gives 0; a scaled copy is still -1 (cosine)
    orth = np.zeros_like(maps)
    orth[:, 0] = 1.0
    proj = np.zeros_like(maps)
    proj[:, 1] = 1.0
    np.testing.assert_allclose(pixel_to_pixel_loss(jt.array(proj), jt.array(orth)).item(), 0.0, atol=1e-6)
    np.testing.assert_allclose(pixel_to_pixel_loss(jt.array(maps), jt.array(3 * maps)).item(), -1.0, rtol=1e-5)
    # stop-gradient on the projection, gradient on the prediction
    z = jt.array(maps)
    p = jt.array(rng.normal(size=maps.shape).astype("float32"))
    loss = pixel_to_pixel_loss(z, p)
    grad_z, grad_p = jt.grad(loss, [z, p])
    assert np.abs(grad_z.numpy()).max() == 0
    assert np.abs(grad_p.numpy()).max() > 0


def test_pixel_loss_samples_matching_points():
    # Crop k is crop q shifted by one pixel: sampling both at the same image points matches features exactly.
    rng = np.random.default_rng(6)
    b, c, h, w = 1, 4, 4, 5
    image = rng.normal(size=(b, c, h, w + 1)).astype("float32")
    crop_q, crop_k = image[..., :w], image[..., 1:]
    maps = jt.array(np.concatenate([crop_q, crop_k]))
    xs_q = (2 * np.array([1, 2, 3]) + 1) / w - 1  # q pixels x = 1..3 are k pixels x = 0..2
    xs_k = (2 * np.array([0, 1, 2]) + 1) / w - 1
    ys = (2 * np.array([0, 2]) + 1) / h - 1
    grid_q = np.stack(np.meshgrid(xs_q, ys), axis=-1)[None].astype("float32")
    grid_k = np.stack(np.meshgrid(xs_k, ys), axis=-1)[None].astype("float32")
    sampled = sample_overlap(maps, jt.array(grid_q), jt.array(grid_k))
    np.testing.assert_allclose(pixel_to_pixel_loss(sampled, sampled).item(), -1.0, rtol=1e-5)
    misaligned = sample_overlap(maps, jt.array(grid_q), jt.array(grid_q))
    shifted = pixel_to_pixel_loss(misaligned, misaligned)
    assert shifted.item() > -0.99


def test_combine_pass_losses():
    total = combine_pass_losses(jt.array(2.0), [jt.array(4.0)], jt.array(-0.5), weights=(1, 1))
    np.testing.assert_allclose(total.item(), (2.0 + 4.0) / 2 - 0.5)
    with pytest.raises(ValueError):
        combine_pass_losses(jt.array(2.0), [jt.array(4.0)], jt.array(0.0), weights=(1, 1, 1))


def test_distributed_helpers_without_mpi():
    if distributed.in_mpi():
        pytest.skip("running under MPI")
    assert distributed.rank() == 0 and distributed.world_size() == 1 and distributed.is_main_process()
    x = jt.array([1.0, 2.0])
    np.testing.assert_array_equal(distributed.all_reduce_sum(x).numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(distributed.all_reduce_mean(x).numpy(), [1.0, 2.0])
