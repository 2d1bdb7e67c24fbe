"""Weights-only reading of pickled checkpoints from outside: PyTorch (zip and legacy formats), Jittor and plain pickles.

Every global a pickle names goes through an allow-list (tensors, numpy arrays, containers, plain values: PyTorch's
weights-only rule); any other one, e.g. `os.system`, `builtins.eval` or a `subprocess` function, stops the read with
one line naming the file and the refused global, before anything is called. Tensors come back as numpy arrays, so
neither torch nor jittor is needed to read a file.
"""
import _compat_pickle
import collections
import hashlib
import io
import math
import mmap
import os
import pickle
import struct
import zipfile
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from uss.errors import CheckpointError

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_JITTOR_TRAILER = b"HCAJSLHD"  # jt.save: pickle + SHA-1 + this
_USS_TRAILER = b"USS-CKPT-1"  # this project's checkpoints before the safetensors format: pickle + SHA-1 + this


class UnsafeCheckpointError(CheckpointError):
    """A pickle that names a global outside the weights-only allow-list (nothing in it was run)."""


# ------------------------------------------------------------------------------------ torch storages / tensors

_STORAGE_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "bf16",
                   "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
                   "ByteStorage": "u1", "BoolStorage": "?"}
_TORCH_DTYPES = {"float32": "<f4", "float": "<f4", "float64": "<f8", "double": "<f8", "float16": "<f2",
                 "half": "<f2", "bfloat16": "bf16", "int64": "<i8", "long": "<i8", "int32": "<i4", "int": "<i4",
                 "int16": "<i2", "short": "<i2", "int8": "i1", "uint8": "u1", "bool": "?"}


class _DType:
    """A torch storage class or dtype, reduced to the numpy dtype its bytes have."""
    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: str) -> None:
        self.name, self.dtype = name, dtype

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError(f"state for {self.name}")


class _Storage:
    """A torch storage: its element dtype and bytes (filled when the file's data section is read)."""
    __slots__ = ("dtype", "key", "numel", "data", "offset", "root")

    def __init__(self, dtype: str, key: str, numel: Optional[int], root: Optional["_Storage"] = None,
                 offset: int = 0) -> None:
        self.dtype, self.key, self.numel, self.data, self.root, self.offset = dtype, key, numel, None, root, offset

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError("state for a storage")


class _Tensor:
    """A tensor whose storage may not be read yet; `resolve` turns it into a numpy array."""
    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: _Storage, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...]) -> None:
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError("a tensor without a storage")
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError("state for a tensor")

    def resolve(self) -> np.ndarray:
        storage = self.storage
        data = storage.root.data if storage.root is not None else storage.data
        if data is None:
            raise pickle.UnpicklingError(f"storage {storage.key} has no data")
        bf16 = storage.dtype == "bf16"
        flat = np.frombuffer(data, dtype="<u2" if bf16 else storage.dtype)[storage.offset:]
        if not self.size:
            array = flat[self.offset:self.offset + 1].reshape(())
        elif math.prod(self.size) == 0:
            array = np.zeros(self.size, flat.dtype)
        else:
            end = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
            if self.offset < 0 or end > flat.size or min(self.stride) < 0:
                raise pickle.UnpicklingError(f"tensor outside its storage {storage.key}")
            contiguous = self.stride == tuple(math.prod(self.size[i + 1:]) for i in range(len(self.size)))
            if contiguous:  # the common case: a read-only view of the file's bytes, no copy
                return self._finish(flat[self.offset:end].reshape(self.size), bf16)
            array = np.lib.stride_tricks.as_strided(flat[self.offset:], self.size,
                                                    tuple(s * flat.itemsize for s in self.stride))
        return self._finish(np.array(array), bf16)

    @staticmethod
    def _finish(array: np.ndarray, bf16: bool) -> np.ndarray:
        if bf16:
            return (array.astype(np.uint32) << 16).view(np.float32)
        return array


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored) -> _Tensor:
    """torch._utils._rebuild_tensor(_v2): requires_grad, backward hooks and metadata do not matter here."""
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, *_ignored):
    if isinstance(dtype, _DType) and isinstance(storage, _Storage):
        storage.dtype = dtype.dtype
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_ignored):
    if not isinstance(data, _Tensor):
        raise pickle.UnpicklingError("a parameter that is not a tensor")
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    """torch._tensor._rebuild_from_type_v2: only a plain Tensor / Parameter rebuilt by an allowed function."""
    if func not in (_rebuild_tensor, _rebuild_tensor_v3, _rebuild_parameter) or new_type not in (_TENSOR, _PARAMETER):
        raise pickle.UnpicklingError("a tensor subclass")
    return func(*args)


_TENSOR = _DType("torch.Tensor", "")
_PARAMETER = _DType("torch.nn.parameter.Parameter", "")


# ------------------------------------------------------------------------------------------ plain values

class Namespace:
    """Stand-in for a pickled argparse.Namespace (saved training arguments): only its attributes are kept."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise pickle.UnpicklingError("a Namespace state that is not a dict")
        self.__dict__.update(state)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """_codecs.encode as protocol-2 pickles use it for bytes; only the two text codecs pickle writes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}")
    return text.encode(encoding)


def _np_reconstruct(cls, shape, dtype):
    if cls is not np.ndarray:
        raise pickle.UnpicklingError("numpy _reconstruct of something else than ndarray")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _np_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise pickle.UnpicklingError("a numpy scalar that is not a number")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _np_dtype(spec, align=False, copy=False):
    dtype = np.dtype(spec, align, copy)
    if dtype.hasobject:
        raise pickle.UnpicklingError("a numpy object dtype")
    return dtype


def _jittor_var(array, *_ignored):
    """jittor's Var pickles as jittor_core.Var(ndarray): keep the array."""
    if not isinstance(array, np.ndarray):
        raise pickle.UnpicklingError("a jittor Var that is not an array")
    return array


_ALLOWED: Dict[Tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray, ("builtins", "slice"): slice,
    ("_codecs", "encode"): _latin1_encode,
    ("argparse", "Namespace"): Namespace,
    ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _np_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy.core.multiarray", "scalar"): _np_scalar, ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("jittor", "jittor_core.Var"): _jittor_var, ("jittor_core", "Var"): _jittor_var,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor, ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TENSOR, ("torch.nn.parameter", "Parameter"): _PARAMETER,
    ("torch", "Size"): tuple,
}
_ALLOWED.update({("torch", name): _DType(f"torch.{name}", dtype) for name, dtype in _STORAGE_DTYPES.items()})
_ALLOWED.update({("torch", name): _DType(f"torch.{name}", dtype) for name, dtype in _TORCH_DTYPES.items()})
_ALLOWED[("torch", "UntypedStorage")] = _ALLOWED[("torch.storage", "UntypedStorage")] = _DType("UntypedStorage", "u1")


class _Refused(Exception):
    """Raised inside the unpickler; becomes UnsafeCheckpointError with the file's name."""


class WeightsUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves only allow-listed globals and (for torch files) storage references."""

    def __init__(self, file, storage_data: Optional[Callable[[str], bytes]] = None) -> None:
        super().__init__(file)
        self.storage_data = storage_data  # zip format: key -> bytes; legacy: None and self.storages filled
        self.storages: Dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names in protocol <= 2 pickles (`__builtin__`, `copy_reg`), as pickle's own find_class maps them.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        value = _ALLOWED.get((module, name))
        if value is None:
            raise _Refused(f"global '{module}.{name}'")
        return value

    def persistent_load(self, pid: Any) -> Any:
        if self.storages is None or not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise _Refused(f"persistent id {str(pid)[:60]}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(storage_type, _DType) or storage_type in (_TENSOR, _PARAMETER):
            raise _Refused(f"storage type {getattr(storage_type, 'name', type(storage_type).__name__)}")
        view = pid[5] if len(pid) > 5 else None
        root = self.storages.get(key)
        if root is None:
            root = self.storages[key] = _Storage(storage_type.dtype, key, int(numel))
            if self.storage_data is not None:
                root.data = self.storage_data(key)
        if view is None:
            return root
        view_key, offset, _size = view  # legacy format: a view into another storage
        return _Storage(root.dtype, str(view_key), None, root=root, offset=int(offset))


def _resolve(tree: Any, path: str) -> Any:
    """Replace lazy tensors by arrays and Namespaces by dicts; refuse anything that is not plain data."""
    if isinstance(tree, _Tensor):
        return tree.resolve()
    if isinstance(tree, np.ndarray):
        if tree.dtype.hasobject:
            raise _Refused("numpy object array")
        return tree
    if isinstance(tree, Namespace):
        return {k: _resolve(v, path) for k, v in vars(tree).items()}
    if isinstance(tree, dict):
        out = type(tree)() if isinstance(tree, collections.OrderedDict) else {}
        for key, value in tree.items():
            out[_resolve(key, path)] = _resolve(value, path)
        return out
    if isinstance(tree, (list, tuple, set, frozenset)):
        return type(tree)(_resolve(v, path) for v in tree)
    if tree is None or isinstance(tree, (bool, int, float, complex, str, bytes, bytearray, slice, np.generic)):
        return tree
    raise _Refused(f"an object of type {type(tree).__name__}")  # e.g. a bare storage class


def _refused_error(path: str, what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"{path}: refused to load {what}: only tensors, arrays, containers and plain values are read "
        f"(weights-only); nothing in the file was run")


def _unpickle(path: str, stream, storage_data=None, storages_into: Optional[Dict[str, _Storage]] = None) -> Any:
    unpickler = WeightsUnpickler(stream, storage_data)
    if storage_data is None and storages_into is None:
        unpickler.storages = None  # type: ignore[assignment]  # a plain pickle has no storages
    elif storages_into is not None:
        unpickler.storages = storages_into
    try:
        return unpickler.load()
    except _Refused as refused:
        raise _refused_error(path, str(refused)) from None


def _read_zip(path: str) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pickles:
            raise CheckpointError(f"{path}: a zip file without data.pkl: not a PyTorch checkpoint")
        prefix = pickles[0][:-len("data.pkl")]
        if prefix + "byteorder" in names and archive.read(prefix + "byteorder").strip() not in (b"little", b""):
            raise CheckpointError(f"{path}: a big-endian PyTorch file; not supported")
        raw = archive.read(pickles[0])
        with open(path, "rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if os.path.getsize(path) else None

        def storage_data(key: str):
            info = archive.getinfo(f"{prefix}data/{key}")
            if info.compress_type != zipfile.ZIP_STORED or mapped is None:
                return archive.read(info)
            # torch.save stores storages uncompressed: map them instead of copying (the local header's name and
            # extra field lengths give where the bytes start)
            name_length, extra_length = struct.unpack("<HH", mapped[info.header_offset + 26:info.header_offset + 30])
            start = info.header_offset + 30 + name_length + extra_length
            if mapped[info.header_offset:info.header_offset + 4] != b"PK\x03\x04" or \
                    start + info.file_size > len(mapped):
                raise CheckpointError(f"{path}: damaged zip entry {info.filename}")
            return memoryview(mapped)[start:start + info.file_size]

        tree = _unpickle(path, io.BytesIO(raw), storage_data=storage_data)
        return _resolve_or_refuse(tree, path)


def _read_legacy_torch(path: str, stream) -> Any:
    _unpickle(path, stream, storages_into={})  # protocol version
    _unpickle(path, stream, storages_into={})  # system info
    storages: Dict[str, _Storage] = {}
    tree = _unpickle(path, stream, storages_into=storages)
    keys = _unpickle(path, stream, storages_into={})
    if not isinstance(keys, list):
        raise CheckpointError(f"{path}: damaged legacy PyTorch file (no storage list)")
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise CheckpointError(f"{path}: damaged legacy PyTorch file (unknown storage {key})")
        head = stream.read(8)
        if len(head) != 8:
            raise CheckpointError(f"{path}: truncated legacy PyTorch file")
        numel = struct.unpack("<q", head)[0]
        itemsize = 2 if storage.dtype == "bf16" else np.dtype(storage.dtype).itemsize
        storage.data = stream.read(numel * itemsize)
        if len(storage.data) != numel * itemsize:
            raise CheckpointError(f"{path}: truncated legacy PyTorch file")
    return _resolve_or_refuse(tree, path)


def _resolve_or_refuse(tree: Any, path: str) -> Any:
    try:
        return _resolve(tree, path)
    except _Refused as refused:
        raise _refused_error(path, str(refused)) from None
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path}: damaged checkpoint ({error})") from None


def _strip_trailer(path: str, data: bytes) -> Tuple[bytes, bool]:
    """(pickle bytes, True) for jt.save / old uss files with a verified SHA-1 trailer; (data, False) otherwise."""
    for trailer in (_USS_TRAILER, _JITTOR_TRAILER):
        if data.endswith(trailer):
            payload, digest = data[:-len(trailer) - 20], data[-len(trailer) - 20:-len(trailer)]
            if hashlib.sha1(payload).digest() != digest:
                raise CheckpointError(f"{path}: checkpoint is corrupted (checksum mismatch); delete it or "
                                      f"download it again")
            return payload, True
    return data, False


def read_pickled(path: str) -> Any:
    """The contents of a PyTorch (.pth/.pth.tar, zip or legacy), Jittor (jt.save) or plain pickle, weights-only.

    Tensors come back as numpy arrays. Raises UnsafeCheckpointError (a refused global) or CheckpointError
    (missing, unreadable, corrupted), each one line naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        with open(path, "rb") as handle:
            data = handle.read()
        payload, trailed = _strip_trailer(path, data)
        stream = io.BytesIO(payload)
        first = _unpickle(path, stream, storages_into={})
        if not trailed and first == TORCH_LEGACY_MAGIC:
            return _read_legacy_torch(path, stream)
        return _resolve_or_refuse(first, path)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            struct.error, zipfile.BadZipFile, OSError, MemoryError) as error:
        message = str(error).splitlines()[0] if str(error) else "no message"
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__}: {message})") from None
