"""What every stage shares: device choice, seeding, rank-aware logging and warnings.

Checkpoints (a stage's state in its dump folder included) are `uss.checkpoints.native`'s; the training loop is
`uss.training.loop`'s.
"""
import json
import os
import random
import time
from typing import Any, Dict

import jittor as jt
import numpy as np

from uss import distributed


def setup_device() -> str:
    """Use CUDA when jittor has it, else the CPU; returns a word for the logs."""
    jt.flags.use_cuda = jt.has_cuda
    return "cuda" if jt.flags.use_cuda else "cpu"


def seed_everything(seed: int) -> None:
    """Seed jittor, numpy and random (model initialisation); data randomness has its own per-image seeds."""
    jt.set_global_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


class StageLog:
    """Prints `[stage] message` on rank 0 and appends per-epoch records to <dump>/log.jsonl."""

    def __init__(self, stage: str, dump_dir: str):
        self.stage = stage
        self.dump_dir = dump_dir
        self.start = time.time()

    def info(self, message: str) -> None:
        if distributed.is_main_process():
            print(f"[{self.stage}] {message}", flush=True)

    def record(self, entry: Dict[str, Any]) -> None:
        if distributed.is_main_process():
            with open(os.path.join(self.dump_dir, "log.jsonl"), "a") as handle:
                handle.write(json.dumps(entry, sort_keys=True) + "\n")

    def elapsed(self) -> float:
        return time.time() - self.start
