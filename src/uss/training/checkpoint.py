"""Training checkpoints with no code path: tensors in safetensors, everything else as JSON in its header.

A checkpoint is one `.safetensors` file, written atomically. Its header metadata holds `uss` (JSON: epoch,
arguments, optimiser scalars, ... with every array replaced by {"__tensor__": name}) and `sha256` (a digest of
the JSON and of every tensor's name, dtype, shape and bytes, checked on load). Read without jittor or this
package:

    import json
    from safetensors import safe_open
    with safe_open("checkpoint.safetensors", "numpy") as f:
        meta = json.loads(f.metadata()["uss"])       # {"epoch": 20, "args": {...}, "state_dict": {...}, ...}
        weights = {k[len("state_dict/"):]: f.get_tensor(k) for k in f.keys() if k.startswith("state_dict/")}

Everything else (earlier runs' `checkpoint.pth.tar`, PyTorch and Jittor files) is read by the weights-only
unpickler of `uss.training.safe_load`; a plain `.safetensors` file without this metadata reads as its tensors.
"""
import hashlib
import json
import os
from typing import Any, Dict, Optional

import numpy as np

from uss.atomic import atomic_write_bytes
from uss.training.safe_load import CheckpointError, UnsafeCheckpointError, read_pickled

__all__ = ["CheckpointError", "UnsafeCheckpointError", "save_checkpoint", "load_checkpoint", "load_model_state",
           "to_numpy", "SUFFIX", "FORMAT"]

SUFFIX = ".safetensors"
FORMAT = "uss-checkpoint-2"
_SAFETENSORS_MAGIC_MAX_HEADER = 100 * 1024 * 1024


def to_numpy(tree: Any) -> Any:
    """Replace every jittor Var in nested dicts/lists/tuples by a numpy array (framework-free)."""
    try:
        import jittor as jt
    except ImportError:  # reading needs no jittor
        return tree
    if isinstance(tree, jt.Var):
        return tree.numpy()
    if isinstance(tree, dict):
        return {key: to_numpy(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_numpy(value) for value in tree)
    return tree


# --------------------------------------------------------------------------------------- tree <-> JSON

def _encode(tree: Any, name: str, tensors: Dict[str, np.ndarray]) -> Any:
    """JSON-able form of `tree`; arrays go to `tensors` under their path (`state_dict/backbone.conv1.weight`)."""
    if isinstance(tree, np.ndarray):
        if tree.dtype.hasobject:
            raise TypeError(f"{name}: object arrays cannot be saved")
        if name in tensors:
            raise TypeError(f"{name}: two arrays with the same path")
        tensors[name] = np.ascontiguousarray(tree)
        return {"__tensor__": name}
    if isinstance(tree, np.generic):
        return {"__scalar__": tree.dtype.str, "value": tree.item()}
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    if isinstance(tree, tuple):
        return {"__tuple__": [_encode(v, f"{name}/{i}", tensors) for i, v in enumerate(tree)]}
    if isinstance(tree, list):
        return [_encode(v, f"{name}/{i}", tensors) for i, v in enumerate(tree)]
    if isinstance(tree, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in tree):
            return {k: _encode(v, f"{name}/{k}" if name else k, tensors) for k, v in tree.items()}
        return {"__items__": [[_encode(k, f"{name}/key{i}", tensors), _encode(v, f"{name}/{k}", tensors)]
                              for i, (k, v) in enumerate(tree.items())]}
    raise TypeError(f"{name}: cannot save a {type(tree).__name__} in a checkpoint (only arrays and plain values)")


def _decode(tree: Any, tensors: Dict[str, np.ndarray], path: str) -> Any:
    if isinstance(tree, list):
        return [_decode(v, tensors, path) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if "__tensor__" in tree:
        if tree["__tensor__"] not in tensors:
            raise CheckpointError(f"{path}: damaged checkpoint (tensor {tree['__tensor__']} missing)")
        return tensors[tree["__tensor__"]]
    if "__scalar__" in tree:
        return np.array(tree["value"], dtype=np.dtype(tree["__scalar__"]))[()]
    if "__tuple__" in tree:
        return tuple(_decode(v, tensors, path) for v in tree["__tuple__"])
    if "__items__" in tree:
        return {_decode(k, tensors, path): _decode(v, tensors, path) for k, v in tree["__items__"]}
    return {k: _decode(v, tensors, path) for k, v in tree.items()}


def _digest(meta_json: str, tensors: Dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256(meta_json.encode())
    for name in sorted(tensors):
        array = tensors[name]
        digest.update(f"\0{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- save/load

def save_checkpoint(path: str, state: Dict[str, Any]) -> None:
    """Write `state` (Vars converted to numpy) as one safetensors file with JSON metadata, atomically."""
    from safetensors.numpy import save

    tensors: Dict[str, np.ndarray] = {}
    meta_json = json.dumps(_encode(to_numpy(state), "", tensors), sort_keys=True)
    metadata = {"format": FORMAT, "uss": meta_json, "sha256": _digest(meta_json, tensors)}
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def _safetensors_header(path: str) -> Optional[dict]:
    """The JSON header of a safetensors file, or None when the file is not one (pickles and zips start otherwise)."""
    with open(path, "rb") as handle:
        head = handle.read(9)
        if len(head) != 9 or head[8:9] != b"{":
            return None
        size = int.from_bytes(head[:8], "little")
        if not 2 <= size <= _SAFETENSORS_MAGIC_MAX_HEADER:
            return None
        try:
            return json.loads(b"{" + handle.read(size - 1))
        except ValueError:
            raise CheckpointError(f"{path}: damaged safetensors file (unreadable header); delete it to redo "
                                  f"the stage") from None


def _load_safetensors(path: str, header: dict) -> Dict[str, Any]:
    from safetensors.numpy import load

    try:
        with open(path, "rb") as handle:
            tensors = load(handle.read())
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error types for damaged files
        raise CheckpointError(f"{path}: damaged safetensors file ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}); delete it to redo the stage") from None
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != FORMAT:
        return tensors  # a foreign safetensors file: its tensors
    if _digest(metadata.get("uss", ""), tensors) != metadata.get("sha256"):
        raise CheckpointError(f"{path}: checkpoint is corrupted (checksum mismatch); delete it to restart the stage")
    return _decode(json.loads(metadata["uss"]), tensors, path)


def load_checkpoint(path: str) -> Dict[str, Any]:
    """Read a checkpoint: this project's safetensors format, or (weights-only) an earlier `checkpoint.pth.tar`,
    a PyTorch or a Jittor file. Arrays come back as numpy; errors are one line naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint not found")
    header = _safetensors_header(path)
    if header is not None:
        return _load_safetensors(path, header)
    return read_pickled(path)


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
