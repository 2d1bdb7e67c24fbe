"""What every training stage shares: device choice, seeding, rank-aware logging, resume and save."""
import json
import os
import random
import sys
import time
from typing import Any, Dict, Optional, Tuple

import jittor as jt
import numpy as np

from uss import distributed
from uss.training.checkpoint import (CheckpointError, load_checkpoint, load_model_state,  # noqa: F401
                                    save_checkpoint)

CHECKPOINT = "checkpoint.safetensors"
LEGACY_CHECKPOINT = "checkpoint.pth.tar"  # earlier runs; read weights-only, superseded by the next save


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


def set_lr(optimizer: jt.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = float(lr)


def checkpoint_path(dump_dir: str) -> str:
    return os.path.join(dump_dir, CHECKPOINT)


def existing_checkpoint(path: str) -> Optional[str]:
    """`path` if it exists, else the same file in the pre-safetensors name (<dump>/checkpoint.pth.tar), else None."""
    if os.path.isfile(path):
        return path
    if path.endswith(".safetensors"):
        legacy = path[:-len(".safetensors")] + ".pth.tar"
        if os.path.isfile(legacy):
            return legacy
    return None


def resume(dump_dir: str, model: jt.nn.Module, optimizer: Optional[jt.optim.Optimizer] = None
           ) -> Tuple[int, Dict[str, Any]]:
    """Load <dump>/checkpoint.safetensors (or an earlier run's checkpoint.pth.tar) if present: returns
    (epochs done, the whole checkpoint dict)."""
    path = existing_checkpoint(checkpoint_path(dump_dir))
    if path is None:
        return 0, {}
    state = load_checkpoint(path)
    load_model_state(model, state["state_dict"], path)
    if optimizer is not None and "optimizer" in state:
        optimizer.load_state_dict(_without_transients(state["optimizer"]))
    return int(state["epoch"]), state


def _without_transients(optimizer_state: Dict[str, Any]) -> Dict[str, Any]:
    """A jittor optimizer state without each param group's "params" (copies of the model weights) and "grads".

    Both are transient: load_state_dict ignores "params", and the gradient buffers are overwritten at the next
    step. Loading "grads" would also replace jittor's stop_fuse gradient buffers by plain arrays, which lets
    the next steps fuse the gradient into the update kernels and round differently (a resumed run would then
    drift from an uninterrupted one by ~1 ulp per step).
    """
    defaults = optimizer_state.get("defaults")
    if not isinstance(defaults, dict) or not isinstance(defaults.get("param_groups"), list):
        return optimizer_state
    groups = [{k: v for k, v in group.items() if k not in ("params", "grads")} if isinstance(group, dict) else group
              for group in defaults["param_groups"]]
    return {**optimizer_state, "defaults": {**defaults, "param_groups": groups}}


def save(dump_dir: str, epoch: int, model: jt.nn.Module, optimizer: Optional[jt.optim.Optimizer],
         args: Any, **extra: Any) -> None:
    """Write <dump>/checkpoint.safetensors atomically on rank 0 (model, optimiser, epochs done, arguments, extras)."""
    if not distributed.is_main_process():
        return
    state = {"epoch": epoch, "state_dict": model.state_dict(), "args": vars(args) if args is not None else {}}
    if optimizer is not None:
        state["optimizer"] = _without_transients(optimizer.state_dict())
    state.update(extra)
    save_checkpoint(checkpoint_path(dump_dir), state)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def load_pretrained(model: jt.nn.Module, path: str, required_prefixes: Tuple[str, ...] = ("backbone.",)) -> int:
    """Load the tensors of `model` that an earlier stage's checkpoint holds; every one under
    `required_prefixes` must be there with the right shape. Returns how many tensors were loaded."""
    from uss.models import foreign

    weights = foreign.to_package_names(foreign.tensors_of(load_checkpoint(path), path))
    own = model.state_dict()
    needed = [k for k in own if k.startswith(required_prefixes)]
    # BatchNorm running statistics (buffers, no gradient) may be absent: SwAV's projection head has no final
    # affine-free BatchNorm, whose statistics then start fresh as in a new model.
    fresh = [k for k in needed if k not in weights and k.endswith((".running_mean", ".running_var"))]
    if fresh:
        warn(f"{path}: {len(fresh)} BatchNorm running statistics not in the file start fresh: {fresh[:4]}")
    missing = [k for k in needed if k not in weights and k not in fresh]
    mismatched = [k for k in needed if k in weights and tuple(np.shape(weights[k])) != tuple(own[k].shape)]
    if missing or mismatched:
        raise CheckpointError(
            f"{path}: does not fit --arch/--stage: {len(missing)} required tensors missing {missing[:4]}, "
            f"{len(mismatched)} of the wrong shape {mismatched[:4]}")
    usable = {k: v for k, v in weights.items() if k in own and tuple(np.shape(v)) == tuple(own[k].shape)}
    model.load_state_dict(usable)
    return len(usable)
