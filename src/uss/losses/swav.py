"""SwAV swapped-prediction loss with the embedding queue, and the PASS deep-to-shallow loss.

Shapes: B = images per crop on this rank, K = prototypes, D = embedding dim. Per-crop tensors are stacked
crop-major: rows [c*B, (c+1)*B) belong to crop c (what `PASSModel` / `PixelAttentionModel` return).
"""
from __future__ import annotations

from typing import Optional, Sequence

import jittor as jt
from jittor import nn

from uss.losses.sinkhorn import AllReduce, sinkhorn

__all__ = [
    "EmbeddingQueue",
    "swav_codes",
    "swapped_prediction_loss",
    "deep_to_shallow_loss",
    "combine_pass_losses",
]


class EmbeddingQueue:
    """SwAV feature queue, one FIFO of past embeddings per assigned crop; local to each rank.

    `queue` is (n_assign, length, D), newest rows first. SwAV/PASS use a global length divisible by
    batch_size * world_size and give each rank `length // world_size` rows. The queue joins Sinkhorn once
    full (its last row non-zero) and stays in use from then on.
    """

    def __init__(self, n_assign: int, length: int, dim: int) -> None:
        self.queue = jt.zeros((n_assign, length, dim), dtype="float32").stop_grad()
        self.in_use = False

    def extend_scores(self, index: int, scores: jt.Var, prototype_weight: jt.Var) -> jt.Var:
        """Prepend the queued embeddings' scores ((length + B) x K) once the queue is full; else return `scores`."""
        if not self.in_use:
            self.in_use = bool((self.queue[index, -1] != 0).any().item())
        if not self.in_use:
            return scores
        queued = nn.matmul_transpose(self.queue[index], prototype_weight.detach())
        return jt.concat([queued, scores], dim=0)

    def push(self, index: int, embeddings: jt.Var) -> None:
        """Insert B new embeddings at the front of queue `index`, dropping the B oldest."""
        rows = [self.queue[j] for j in range(self.queue.shape[0])]
        n_new = embeddings.shape[0]
        rows[index] = jt.concat([embeddings.detach(), self.queue[index, : self.queue.shape[1] - n_new]], dim=0)
        self.queue = jt.stack(rows, dim=0).stop_grad()

    def state_dict(self) -> dict[str, object]:
        """Serializable state (numpy queue)."""
        return {"queue": self.queue.numpy()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore from `state_dict()` output (or PASS's {'queue': ...} file contents)."""
        self.queue = jt.array(state["queue"]).float32().stop_grad()
        self.in_use = False


def swav_codes(
    scores: jt.Var,
    embedding: jt.Var,
    prototype_weight: jt.Var,
    batch_size: int,
    crops_for_assign: Sequence[int] = (0, 1),
    queue: Optional[EmbeddingQueue] = None,
    epsilon: float = 0.05,
    n_iters: int = 3,
    all_reduce: Optional[AllReduce] = None,
    world_size: Optional[int] = None,
) -> list[jt.Var]:
    """Sinkhorn codes (B x K, rows sum to 1) for each crop in `crops_for_assign`, in that order.

    scores: (n_crops*B, K); embedding: (n_crops*B, D) used to fill the queue; prototype_weight: (K, D).
    With a queue, its scores are concatenated before this batch's scores for Sinkhorn (as SwAV) and only
    the last B codes are kept; the queue is then updated with this batch's embeddings.
    """
    codes = []
    with jt.no_grad():
        for i, crop in enumerate(crops_for_assign):
            out = scores[batch_size * crop : batch_size * (crop + 1)].detach()
            if queue is not None:
                out = queue.extend_scores(i, out, prototype_weight)
                queue.push(i, embedding[batch_size * crop : batch_size * (crop + 1)])
            q = sinkhorn(out, epsilon=epsilon, n_iters=n_iters, all_reduce=all_reduce, world_size=world_size)
            codes.append(q[q.shape[0] - batch_size :].stop_grad())
    return codes


def _cross_entropy(codes: jt.Var, scores: jt.Var, temperature: float) -> jt.Var:
    """Mean over samples of -sum_k q_k log softmax(scores / T)_k."""
    return -(codes * nn.log_softmax(scores / temperature, dim=1)).sum(dim=1).mean()


def swapped_prediction_loss(
    scores: jt.Var,
    codes: Sequence[jt.Var],
    batch_size: int,
    crops_for_assign: Sequence[int] = (0, 1),
    temperature: float = 0.1,
) -> jt.Var:
    """SwAV loss: every other crop predicts each assigned crop's codes.

    scores: (n_crops*B, K) with gradient; codes[i]: (B, K) codes of crop crops_for_assign[i].
    Returns mean_i [ sum_{v != crop_i} CE(codes_i, softmax(scores_v / T)) / (n_crops - 1) ].
    """
    n_crops = scores.shape[0] // batch_size
    loss = 0.0
    for q, crop in zip(codes, crops_for_assign):
        subloss = 0.0
        for v in range(n_crops):
            if v != crop:
                subloss = subloss + _cross_entropy(q, scores[batch_size * v : batch_size * (v + 1)], temperature)
        loss = loss + subloss / (n_crops - 1)
    return loss / len(crops_for_assign)


def deep_to_shallow_loss(
    shallow_scores: jt.Var,
    codes: Sequence[jt.Var],
    batch_size: int,
    crops_for_assign: Sequence[int] = (0, 1),
    temperature: float = 0.1,
) -> jt.Var:
    """PASS deep-to-shallow loss for one shallow stage: the other large crop's shallow scores predict the deep codes.

    shallow_scores: (2B, K) for the two large crops (crop-major); codes as in `swapped_prediction_loss`.
    With two large crops this is mean over assigned crops c of CE(codes_c, softmax(shallow_{1-c} / T)), as PASS.
    """
    # The same swapped prediction, with the shallow scores of the large crops as the predictions.
    return swapped_prediction_loss(shallow_scores, codes, batch_size, crops_for_assign, temperature)


def combine_pass_losses(
    swav: jt.Var,
    deep_to_shallow: Sequence[jt.Var],
    pixel: jt.Var,
    weights: Sequence[float] = (1.0, 1.0),
) -> jt.Var:
    """PASS total: (w0 * swav + sum_s w_{1+s} * d2s_s) / sum(weights) + pixel (PASS scripts: weights 1 1)."""
    if len(weights) != 1 + len(deep_to_shallow):
        raise ValueError(f"need {1 + len(deep_to_shallow)} weights, got {len(weights)}")
    total = swav * weights[0]
    for w, term in zip(weights[1:], deep_to_shallow):
        total = total + term * w
    return total / float(sum(weights)) + pixel
