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
unpickler of `uss.checkpoints.pickle_reader`; a plain `.safetensors` file without this metadata reads as its tensors.

A training stage keeps its state in <dump>/checkpoint.safetensors (`save_training_state`, `resume_training_state`)
and starts from an earlier stage's tensors with `load_pretrained`.
"""
import hashlib
import json
import os
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from uss.atomic import atomic_write_bytes
from uss.errors import CheckpointError
from uss.checkpoints.pickle_reader import UnsafeCheckpointError, read_pickled

__all__ = ["CheckpointError", "UnsafeCheckpointError", "save_checkpoint", "load_checkpoint", "load_model_state",
           "to_numpy", "SUFFIX", "FORMAT", "CHECKPOINT", "checkpoint_path", "existing_checkpoint",
           "save_training_state", "resume_training_state", "load_pretrained"]

SUFFIX = ".safetensors"
FORMAT = "uss-checkpoint-2"
CHECKPOINT = "checkpoint.safetensors"  # a training stage's state in its dump folder
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
                              f"{str(error).splitlines()[0] if str(error) else ''}); "
                              "delete it to redo the stage") from None
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


# ------------------------------------------------------------------------------- a training stage's state

def checkpoint_path(dump_dir: str) -> str:
    """<dump>/checkpoint.safetensors."""
    return os.path.join(dump_dir, CHECKPOINT)


def existing_checkpoint(path: str) -> Optional[str]:
    """`path` if it exists, else the same file in the pre-safetensors name (<dump>/checkpoint.pth.tar), else None."""
    if os.path.isfile(path):
        return path
    if path.endswith(SUFFIX):
        legacy = path[:-len(SUFFIX)] + ".pth.tar"  # earlier runs; read weights-only, superseded by the next save
        if os.path.isfile(legacy):
            return legacy
    return None


def resume_training_state(dump_dir: str, model: Any, optimizer: Any = None) -> Tuple[int, Dict[str, Any]]:
    """Load <dump>/checkpoint.safetensors (or an earlier run's checkpoint.pth.tar) if present into the model
    (and optimiser): returns (epochs done, the whole checkpoint dict); (0, {}) without one."""
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


def save_training_state(dump_dir: str, epoch: int, model: Any, optimizer: Any,
                        arguments: Optional[Mapping[str, Any]] = None, **extra: Any) -> None:
    """Write <dump>/checkpoint.safetensors atomically on rank 0 (model, optimiser, epochs done, arguments, extras)."""
    from uss import distributed

    if distributed.world_size() > 1:
        import jittor as jt

        # Every rank runs its pending all-reduces (BatchNorm statistics) now: left lazy, rank 0 alone would run
        # them while fetching the state below and wait forever for ranks that have moved on or exited.
        jt.sync_all()
    if not distributed.is_main_process():
        return
    state = {"epoch": epoch, "state_dict": model.state_dict(), "args": dict(arguments or {})}
    if optimizer is not None:
        state["optimizer"] = _without_transients(optimizer.state_dict())
    state.update(extra)
    save_checkpoint(checkpoint_path(dump_dir), state)


def load_pretrained(model: Any, path: str, required_prefixes: Tuple[str, ...] = ("backbone.",)) -> int:
    """Load the tensors of `model` that an earlier stage's checkpoint holds; every one under
    `required_prefixes` must be there with the right shape. Returns how many tensors were loaded."""
    from uss.checkpoints import foreign
    from uss.errors import warn

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


def swap_backbone(base_path: str, donor_path: str, out_path: str) -> int:
    """Write `base_path` with its `backbone.*` tensors (weights and BatchNorm statistics) taken from `donor_path`.

    Lets a stage that starts from a pretraining checkpoint (heads, prototypes) run on a backbone trained
    otherwise, e.g. a fine-tuned one (benchmarks/stage_ceilings.sh). Both files are read weights-only; every
    backbone tensor of the base must be in the donor with its shape. The optimiser state is dropped. Returns
    how many tensors were replaced."""
    base, donor = load_checkpoint(base_path), load_checkpoint(donor_path)
    weights, donated = dict(base.get("state_dict", {})), donor.get("state_dict", {})
    names = [k for k in weights if k.startswith("backbone.")]
    unfit = [k for k in names if k not in donated or np.shape(donated[k]) != np.shape(weights[k])]
    if not names:
        raise CheckpointError(f"{base_path}: holds no backbone.* tensors")
    if unfit:
        raise CheckpointError(f"{donor_path}: does not hold the backbone of {base_path} ({len(unfit)} of "
                              f"{len(names)} tensors missing or of another shape: {unfit[:3]})")
    weights.update({k: donated[k] for k in names})
    save_checkpoint(out_path, {"epoch": base.get("epoch", 0), "args": base.get("args", {}), "state_dict": weights})
    return len(names)
