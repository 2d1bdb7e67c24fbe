"""Running a batched computation that halves its batch size when the GPU runs out of memory."""
import logging
from typing import Callable, Iterator, Optional, Tuple, TypeVar

import jittor as jt

T = TypeVar("T")
logger = logging.getLogger(__name__)

# Fragments of the messages jittor / CUDA raise when a device allocation fails.
OOM_MARKERS = (
    "unable to alloc cuda device memory",
    "out of memory",
    "cudaerrormemoryallocation",
    "cublas_status_alloc_failed",
    "cudnn_status_alloc_failed",
)


def is_oom_error(exc: BaseException) -> bool:
    """True when exc looks like a device out-of-memory failure."""
    if not isinstance(exc, (RuntimeError, MemoryError)):
        return False
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or any(marker in text for marker in OOM_MARKERS)


def iter_batches_with_oom_backoff(
    process: Callable[[int, int], T],
    total: int,
    batch_size: int,
    enabled: Optional[bool] = None,
    min_batch_size: int = 1,
) -> Iterator[Tuple[int, int, T]]:
    """Yield (start, stop, process(start, stop)) over [0, total) in batches.

    When enabled (default: jt.flags.use_cuda) and process raises an out-of-memory error, the
    batch size is halved (and kept halved) and the same batch is retried; other errors, or an
    OOM at min_batch_size, propagate. process must materialise its outputs (e.g. to numpy) so
    that lazy jittor execution fails inside the call.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if enabled is None:
        enabled = bool(jt.flags.use_cuda)
    start = 0
    while start < total:
        stop = min(start + batch_size, total)
        try:
            result = process(start, stop)
        except (RuntimeError, MemoryError) as exc:
            if not enabled or not is_oom_error(exc) or batch_size <= min_batch_size:
                raise
            new_size = max(min_batch_size, batch_size // 2)
            logger.warning(
                "out of memory on items %d:%d (batch size %d); retrying with batch size %d",
                start, stop, batch_size, new_size,
            )
            batch_size = new_size
            jt.gc()
            continue
        yield start, stop, result
        start = stop
