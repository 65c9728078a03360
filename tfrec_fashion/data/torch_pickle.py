"""Reads PyTorch ``.pth`` checkpoints into NumPy arrays without importing torch.

``torch.save`` writes one of two layouts, both handled here:

- **zip** (torch >= 1.6): a zip archive ``<root>/data.pkl`` (the pickled object, whose tensors
  point at storages through persistent ids ``('storage', <FloatStorage class>, key, location,
  numel)``) plus one raw little-endian file ``<root>/data/<key>`` per storage.
- **legacy** (torch < 1.6): five pickles in a row (magic number, protocol version, system info,
  the object, the list of storage keys), then per storage an int64 element count followed by its
  raw bytes, in the order of that key list. Persistent ids carry a sixth field, an optional view
  ``(view_key, offset, size)`` into a root storage.

Tensors are rebuilt from ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
with the storage offset and strides honoured; ``nn.Parameter`` becomes its array. Only the torch
names a state dict needs are resolved; any other global is refused (unpickling is otherwise
arbitrary code execution), and the error names it.

Usage:

    state = load_torch_state_dict("model.pth")   # {"conv.weight": np.ndarray, ...}
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np

from tfrec_fashion.errors import DataError

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001


def _bfloat16() -> np.dtype:
    import ml_dtypes  # ships with TensorFlow; only needed for bfloat16 checkpoints

    return np.dtype(ml_dtypes.bfloat16)


# torch storage class name -> little-endian NumPy dtype (a callable for the lazily imported one).
STORAGE_DTYPES: dict[str, np.dtype | Callable[[], np.dtype]] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": _bfloat16,
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _StorageType:
    """Stands in for ``torch.FloatStorage`` and friends inside the pickle: only its dtype matters."""

    def __init__(self, name: str):
        dtype = STORAGE_DTYPES[name]
        self.name = name
        self.dtype = dtype if isinstance(dtype, np.dtype) else dtype()


class _Storage:
    """A flat storage whose bytes are filled in once read (legacy files store them after the pickle)."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype = dtype
        self.numel = numel
        self.array: np.ndarray | None = None


class _StorageView:
    """A legacy storage view: ``size`` elements of ``root`` starting at element ``offset``."""

    def __init__(self, root: _Storage, offset: int, size: int):
        self.root, self.offset, self.size = root, offset, size


class _PendingTensor:
    """A tensor whose storage may not be read yet; ``resolve`` turns it into an ndarray."""

    def __init__(self, storage: _Storage | _StorageView, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)

    def resolve(self) -> np.ndarray:
        storage, offset = self.storage, self.offset
        if isinstance(storage, _StorageView):
            storage, offset = storage.root, storage.offset + offset
        flat = storage.array
        if flat is None:
            raise DataError("A tensor refers to a storage the checkpoint never wrote.")
        if not self.size:
            return flat[offset].copy()
        last = offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) if all(self.size) else offset
        if last >= len(flat) and all(self.size):
            raise DataError(
                f"Tensor of size {self.size}, stride {self.stride}, offset {offset} runs past its "
                f"storage of {len(flat)} elements."
            )
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=self.size, strides=[s * itemsize for s in self.stride]
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused) -> _PendingTensor:
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


class _TorchUnpickler(pickle.Unpickler):
    """Unpickles a torch object graph, resolving the few torch globals a state dict uses."""

    _ALLOWED: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    }

    def __init__(self, file: IO[bytes], load_storage: Callable[[tuple], Any]):
        super().__init__(file, encoding="latin1")
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        raise pickle.UnpicklingError(
            f"Refusing to load global {module}.{name} from a torch checkpoint: only state dicts "
            f"of tensors are supported without torch."
        )

    def persistent_load(self, saved_id: tuple) -> Any:
        kind = saved_id[0].decode("ascii") if isinstance(saved_id[0], bytes) else saved_id[0]
        if kind != "storage":
            raise pickle.UnpicklingError(f"Unsupported persistent id {saved_id!r}.")
        return self._load_storage(tuple(saved_id[1:]))


def _resolve(obj: Any) -> Any:
    """Replaces every pending tensor in a nest of dicts/lists/tuples by its ndarray."""
    if isinstance(obj, _PendingTensor):
        return obj.resolve()
    if isinstance(obj, dict):
        return type(obj)((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _load_zip(archive: zipfile.ZipFile) -> Any:
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pickles) != 1:
        raise DataError(f"Expected one data.pkl in the torch zip checkpoint, found {pickles}.")
    root = pickles[0][: -len("data.pkl")]
    byteorder = f"{root}byteorder"
    if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
        raise DataError("Big-endian torch checkpoints are not supported.")
    storages: dict[str, _Storage] = {}

    def load_storage(fields: tuple) -> _Storage:
        storage_type, key, _location, numel = fields[:4]
        if key not in storages:
            storage = _Storage(storage_type.dtype, numel)
            raw = archive.read(f"{root}data/{key}")
            storage.array = np.frombuffer(raw, dtype=storage_type.dtype)
            storages[key] = storage
        return storages[key]

    with archive.open(pickles[0]) as file:
        return _resolve(_TorchUnpickler(file, load_storage).load())


def _load_legacy(file: IO[bytes]) -> Any:
    header = [pickle.load(file, encoding="latin1") for _ in range(3)]
    if header[0] != LEGACY_MAGIC_NUMBER or header[1] != LEGACY_PROTOCOL_VERSION:
        raise DataError(
            f"Not a torch checkpoint: magic number {header[0]!r}, protocol {header[1]!r}."
        )
    if isinstance(header[2], dict) and not header[2].get("little_endian", True):
        raise DataError("Big-endian torch checkpoints are not supported.")
    storages: dict[str, _Storage] = {}

    def load_storage(fields: tuple) -> _Storage | _StorageView:
        storage_type, key, _location, numel, view = fields
        if key not in storages:
            storages[key] = _Storage(storage_type.dtype, numel)
        if view is not None:
            _view_key, offset, size = view
            return _StorageView(storages[key], offset, size)
        return storages[key]

    result = _TorchUnpickler(file, load_storage).load()
    for key in pickle.load(file, encoding="latin1"):
        storage = storages[key]
        (numel,) = struct.unpack("<q", file.read(8))
        nbytes = numel * storage.dtype.itemsize
        raw = file.read(nbytes)
        if numel != storage.numel or len(raw) != nbytes:
            raise DataError(
                f"Storage {key} is truncated or inconsistent: header says {numel} elements, "
                f"pickle says {storage.numel}, read {len(raw)} of {nbytes} bytes."
            )
        storage.array = np.frombuffer(raw, dtype=storage.dtype)
    return _resolve(result)


def load_torch_checkpoint(source: str | Path | bytes | IO[bytes]) -> Any:
    """Loads a ``.pth`` file (a path, its bytes, or a binary file object) with tensors as ndarrays.

    Raises:
        DataError: the file is not a torch checkpoint, is truncated, or holds non-tensor objects.
    """
    if isinstance(source, (str, Path)):
        source = Path(source).read_bytes()
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        if zipfile.is_zipfile(source):
            source.seek(0)
            with zipfile.ZipFile(source) as archive:
                return _load_zip(archive)
        source.seek(0)
        return _load_legacy(source)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, struct.error) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"Could not read the torch checkpoint: {error}") from error


def load_torch_state_dict(source: str | Path | bytes | IO[bytes]) -> dict[str, np.ndarray]:
    """Loads a ``.pth`` state dict as ``{name: ndarray}``, unwrapping a ``{"state_dict": ...}`` nest."""
    state = load_torch_checkpoint(source)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DataError(f"Expected a state dict, the checkpoint holds a {type(state).__name__}.")
    return {str(k): v for k, v in state.items() if isinstance(v, np.ndarray)}
