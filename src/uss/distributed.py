"""MPI helpers for jittor (`mpirun -np N`); every function is a no-op / single-process answer without MPI."""
from __future__ import annotations

import jittor as jt

__all__ = ["in_mpi", "rank", "world_size", "is_main_process", "all_reduce_sum", "all_reduce_mean",
           "broadcast_parameters"]


def in_mpi() -> bool:
    """True when running under MPI with jittor's MPI ops available."""
    return bool(jt.in_mpi)


def rank() -> int:
    """This process's MPI rank (0 without MPI)."""
    return int(jt.rank) if in_mpi() else 0


def world_size() -> int:
    """Number of MPI processes (1 without MPI)."""
    return int(jt.world_size) if in_mpi() else 1


def is_main_process() -> bool:
    """True on rank 0."""
    return rank() == 0


def all_reduce_sum(x: jt.Var) -> jt.Var:
    """Sum of `x` over all ranks (returns `x` itself without MPI)."""
    return x.mpi_all_reduce("add") if in_mpi() else x


def all_reduce_mean(x: jt.Var) -> jt.Var:
    """Mean of `x` over all ranks (returns `x` itself without MPI)."""
    return x.mpi_all_reduce("mean") if in_mpi() else x


def broadcast_parameters(module: jt.nn.Module, root: int = 0) -> None:
    """Copy rank `root`'s parameters (and BN buffers) to all ranks, as PASS does after building the model."""
    if in_mpi():
        for p in module.parameters():
            p.assign(p.mpi_broadcast(root))


def barrier() -> None:
    """Wait until every rank gets here (a tiny all-reduce); no-op without MPI."""
    if in_mpi():
        jt.array([1.0]).mpi_all_reduce("add").sync()
