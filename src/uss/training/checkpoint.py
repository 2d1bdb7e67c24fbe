"""Atomic, checksummed training checkpoints that a stage resumes from automatically."""
import hashlib
import os
import pickle
from typing import Any, Dict, Optional

import numpy as np

from uss.atomic import atomic_write_bytes
from uss.errors import InputError

_MAGIC = b"USS-CKPT-1"


class CheckpointError(InputError):
    """A checkpoint that is unreadable, corrupted or does not fit the model; the message names the file."""


def to_numpy(tree: Any) -> Any:
    """Replace every jittor Var in nested dicts/lists/tuples by a numpy array (picklable, framework-free)."""
    import jittor as jt

    if isinstance(tree, jt.Var):
        return tree.numpy()
    if isinstance(tree, dict):
        return {key: to_numpy(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_numpy(value) for value in tree)
    return tree


def save_checkpoint(path: str, state: Dict[str, Any]) -> None:
    """Pickle `state` (Vars converted to numpy) with a SHA-1 trailer, written atomically."""
    payload = pickle.dumps(to_numpy(state), protocol=4)
    atomic_write_bytes(path, payload + hashlib.sha1(payload).digest() + _MAGIC)


def load_checkpoint(path: str) -> Dict[str, Any]:
    """Read a checkpoint written by save_checkpoint (or a plain pickle / PyTorch file via jt.load)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint not found")
    with open(path, "rb") as handle:
        data = handle.read()
    if data.endswith(_MAGIC):
        payload, digest = data[: -len(_MAGIC) - 20], data[-len(_MAGIC) - 20: -len(_MAGIC)]
        if hashlib.sha1(payload).digest() != digest:
            raise CheckpointError(f"{path}: checkpoint is corrupted (checksum mismatch); delete it to restart the stage")
        return pickle.loads(payload)
    try:
        import jittor as jt

        return jt.load(path)
    except Exception as error:  # any unpickling failure means the file is not a checkpoint
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None


def load_model_state(model: Any, state: Dict[str, Any], path: str, strict: bool = True,
                     prefix_filter: Optional[str] = None) -> None:
    """Copy a state dict into `model`, naming missing / unexpected / mis-shaped keys on failure."""
    own = model.state_dict()
    if prefix_filter is not None:
        state = {k: v for k, v in state.items() if k.startswith(prefix_filter)}
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    mismatched = sorted(k for k in own if k in state and tuple(np.shape(state[k])) != tuple(own[k].shape))
    problems = []
    if strict and missing:
        problems.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if strict and unexpected:
        problems.append(f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    if mismatched:
        problems.append("shape mismatches " + ", ".join(
            f"{k}: file {tuple(np.shape(state[k]))} vs model {tuple(own[k].shape)}" for k in mismatched[:8]))
    if problems:
        raise CheckpointError(f"{path}: does not fit the model: " + "; ".join(problems))
    model.load_state_dict({k: v for k, v in state.items() if k in own})
