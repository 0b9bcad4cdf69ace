"""Read a PyTorch state dict saved in the legacy (pre-1.6, not zip) format without PyTorch
and without executing anything the file contains.

The legacy format is five pickles in a row (magic number, protocol version, system info,
the state dict whose tensors refer to storages by key, the list of storage keys) followed
by each storage's raw bytes (an int64 element count, then the elements). A pickle can call
any importable function; this reader's unpickler admits exactly the names a state dict
needs — `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and the typed
storages — and maps them to inert stand-ins. Any other name (`os.system`, `builtins.eval`,
...) ends the read with LegacyFileError before it is called.
"""

from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class LegacyFileError(ValueError):
    """The file is not a legacy PyTorch state dict this reader accepts; names the file."""


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: type
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, offset, shape, stride, requires_grad=False, hooks=None, *_):
    return _TensorRef(storage, int(offset), tuple(shape), tuple(stride))


class _StorageType:
    def __init__(self, name: str):
        self.dtype = STORAGE_DTYPES[name]


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle, path: Path):
        super().__init__(handle)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise LegacyFileError(
            f"{self.path}: refused to load: its pickle asks for {module}.{name}, which a "
            "PyTorch state dict does not need (only collections.OrderedDict, "
            "torch._utils._rebuild_tensor_v2 and torch's typed storages are admitted)"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise LegacyFileError(f"{self.path}: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise LegacyFileError(f"{self.path}: storage {key} of unknown type")
        return _StorageRef(str(key), storage_type.dtype, int(numel))


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The file's state dict as NumPy arrays (copies; row-major), by its own key order."""
    path = Path(path)
    handle = io.BytesIO(path.read_bytes())

    def load():
        try:
            return _RestrictedUnpickler(handle, path).load()
        except LegacyFileError:
            raise
        except Exception as error:
            raise LegacyFileError(f"{path}: not a legacy PyTorch file: {error}") from error

    if load() != MAGIC_NUMBER:
        raise LegacyFileError(
            f"{path}: no legacy PyTorch magic number (a zip-format file from torch >= 1.6?)"
        )
    if load() != PROTOCOL_VERSION:
        raise LegacyFileError(f"{path}: unknown legacy PyTorch protocol version")
    info = load()
    if not isinstance(info, dict) or not info.get("little_endian", False):
        raise LegacyFileError(f"{path}: only little-endian files are read")
    state = load()
    keys = load()
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise LegacyFileError(f"{path}: not a state dict")
    storages = _read_storages(handle, keys, _storage_refs(state), path)
    return {name: _tensor(ref, storages) for name, ref in state.items()}


def _storage_refs(state: dict) -> dict[str, _StorageRef]:
    refs = {}
    for name, value in state.items():
        if not isinstance(value, _TensorRef):
            raise LegacyFileError(f"state dict entry {name!r} is not a tensor")
        refs[value.storage.key] = value.storage
    return refs


def _read_storages(
    handle: io.BytesIO, keys: list, refs: dict[str, _StorageRef], path: Path
) -> dict[str, np.ndarray]:
    storages = {}
    for key in keys:
        ref = refs.get(str(key))
        if ref is None:
            raise LegacyFileError(f"{path}: storage {key} belongs to no tensor")
        numel = int(np.frombuffer(handle.read(8), dtype="<i8")[0])
        size = numel * np.dtype(ref.dtype).itemsize
        raw = handle.read(size)
        if numel != ref.numel or len(raw) != size:
            raise LegacyFileError(f"{path}: storage {key} is truncated or mis-sized")
        storages[ref.key] = np.frombuffer(raw, dtype=np.dtype(ref.dtype).newbyteorder("<"))
    if handle.read(1):
        raise LegacyFileError(f"{path}: bytes after the last storage")
    return storages


def _tensor(ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    flat = storages[ref.storage.key]
    if not ref.shape:
        return flat[ref.offset].copy()
    itemsize = flat.itemsize
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True))
    if ref.offset < 0 or last >= len(flat) or min(ref.stride) < 0:
        raise LegacyFileError(f"a tensor of shape {ref.shape} reaches outside its storage")
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset :],
        shape=ref.shape,
        strides=tuple(s * itemsize for s in ref.stride),
        writeable=False,
    )
    return np.array(view)
