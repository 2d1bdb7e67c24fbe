"""Sinkhorn-Knopp equipartition of samples over prototypes (SwAV `distributed_sinkhorn`)."""
from __future__ import annotations

from typing import Callable, Optional

import jittor as jt

from uss import distributed

__all__ = ["sinkhorn"]

AllReduce = Callable[[jt.Var], jt.Var]


def sinkhorn(
    scores: jt.Var,
    epsilon: float = 0.05,
    n_iters: int = 3,
    all_reduce: Optional[AllReduce] = None,
    world_size: Optional[int] = None,
) -> jt.Var:
    """Soft codes Q (B_local x K) for prototype scores (B_local x K); each row of Q sums to 1.

    Q = exp(scores/eps)^T is scaled to total 1, then `n_iters` times: rows (prototypes) to 1/K, columns
    (samples) to 1/B with B = B_local * world_size (every rank holds B_local rows, as SwAV); finally times B.
    The total and the prototype sums go through `all_reduce` (default: MPI sum, identity without MPI;
    world_size defaults to the MPI world size, 1 without MPI), so with N ranks the result equals Sinkhorn
    on the concatenated batch. Column sums are per-sample hence local. No gradient.
    """
    reduce = distributed.all_reduce_sum if all_reduce is None else all_reduce
    world_size = distributed.world_size() if world_size is None else world_size
    with jt.no_grad():
        q = jt.exp(scores.detach().float32() / epsilon).transpose()  # K x B_local
        n_prototypes = q.shape[0]
        n_samples = q.shape[1] * world_size
        q = q / reduce(q.sum())
        for _ in range(n_iters):
            q = q / reduce(q.sum(dim=1, keepdims=True))
            q = q / n_prototypes
            q = q / q.sum(dim=0, keepdims=True)
            q = q / n_samples
        q = q * n_samples
        return q.transpose().stop_grad()
