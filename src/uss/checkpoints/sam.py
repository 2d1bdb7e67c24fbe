"""Loading official SAM PyTorch checkpoints (.pth) into the Jittor model, key-for-key, no conversion."""
import os
from typing import Dict, List, Mapping, Tuple

import numpy as np
import jittor as jt
from jittor import nn

from uss.errors import CheckpointError
from uss.checkpoints.native import load_checkpoint

_MAX_LISTED = 20


def _one_line(exc: BaseException) -> str:
    """First non-empty line of an exception message, prefixed with its type."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"


def _listing(title: str, items: List[str]) -> str:
    """Format up to _MAX_LISTED items under a title."""
    shown = items[:_MAX_LISTED]
    more = f"\n    ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
    return f"  {title} ({len(items)}):\n" + "\n".join(f"    {it}" for it in shown) + more


def read_state_dict(path: str) -> Dict[str, jt.Var]:
    """Read a SAM state dict weights-only (official PyTorch .pth, a jt.save pickle or safetensors); any failure,
    a refused global included, becomes a one-line CheckpointError naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"SAM checkpoint not found: {path}")
    try:
        obj = load_checkpoint(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is reported the same way
        message = str(exc)
        if message.startswith(path + ": "):
            message = message[len(path) + 2:]
        raise CheckpointError(f"cannot read SAM checkpoint {path}: "
                              f"{message.splitlines()[0] if message else _one_line(exc)}") from None
    if isinstance(obj, Mapping):
        for wrapper in ("model", "state_dict"):
            inner = obj.get(wrapper)
            if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"cannot read SAM checkpoint {path}: not a non-empty state dict")
    state: Dict[str, jt.Var] = {}
    for key, value in obj.items():
        if isinstance(value, np.ndarray):
            value = jt.array(value)
        if not isinstance(key, str) or not isinstance(value, jt.Var):
            raise CheckpointError(
                f"cannot read SAM checkpoint {path}: entry {key!r} is {type(value).__name__}, not a tensor"
            )
        state[key] = value
    return state


def check_state_dict(model: nn.Module, state: Mapping[str, jt.Var], path: str = "<state dict>") -> None:
    """Raise CheckpointError naming every missing, unexpected and shape-mismatched key."""
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state)
    unexpected = sorted(k for k in state if k not in expected)
    mismatched: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = [
        (k, tuple(state[k].shape), tuple(expected[k].shape))
        for k in sorted(expected)
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = [f"SAM checkpoint {path} does not match the model:"]
    if missing:
        parts.append(_listing("missing keys", missing))
    if unexpected:
        parts.append(_listing("unexpected keys", unexpected))
    if mismatched:
        parts.append(
            _listing(
                "shape mismatches",
                [f"{k}: checkpoint {list(got)} vs model {list(want)}" for k, got, want in mismatched],
            )
        )
    raise CheckpointError("\n".join(parts))


def load_sam_checkpoint(model: nn.Module, path: str) -> nn.Module:
    """Strictly load an official SAM .pth into model (same key names and shapes); returns model."""
    state = read_state_dict(path)
    check_state_dict(model, state, os.fspath(path))
    params = model.state_dict()
    for key, value in state.items():
        target = params[key]
        target.update(value.cast(target.dtype))
        target.sync(False, False)
    del state
    jt.gc()
    return model
