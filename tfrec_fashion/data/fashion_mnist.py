"""Fashion-MNIST: 70,000 real 28x28 grey-scale clothing images in 10 classes (Zalando, MIT licence).

Read from the IDX files of the Debian package ``dataset-fashion-mnist``, which installs them
gzipped under ``/usr/share/datasets/fashion-mnist/``::

    train-images-idx3-ubyte.gz  magic 0x00000803, dims [60000, 28, 28], uint8 pixels
    train-labels-idx1-ubyte.gz  magic 0x00000801, dims [60000], uint8 labels 0..9
    t10k-images-idx3-ubyte.gz   magic 0x00000803, dims [10000, 28, 28]
    t10k-labels-idx1-ubyte.gz   magic 0x00000801, dims [10000]

Uncompressed files with the same names (without ``.gz``) are read too. Nothing is downloaded.

Example:

    mnist = load_fashion_mnist("train")
    mnist.images.shape            # (60000, 28, 28), uint8
    mnist.class_names[mnist.labels[0]]
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfrec_fashion.errors import DataError, MissingDataError

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
ROOT_ENV = "TFREC_FASHION_MNIST_DIR"
IMAGE_SIZE = 28

# split -> (images file, labels file), names as published (without .gz).
_SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLITS = ("train", "test", "all")

_IDX_UBYTE = 0x08  # IDX type code of unsigned bytes, the only type Fashion-MNIST uses.


@dataclass(frozen=True, eq=False)
class FashionMnist:
    """Fashion-MNIST images with their class labels.

    Arrays are read-only (they may be shared by later loads in the same process); copy to edit.

    Args:
        images: uint8 [N, 28, 28], 0 = background, 255 = full intensity.
        labels: int64 [N], class index in 0..9.
        class_names: the 10 official class names, indexed by label.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...] = CLASS_NAMES

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def fashion_mnist_root(root: str | os.PathLike | None = None) -> Path:
    """Returns the folder to read: ``root``, else ``$TFREC_FASHION_MNIST_DIR``, else the Debian path."""
    if root is not None:
        return Path(root).expanduser()
    return Path(os.environ.get(ROOT_ENV) or DEBIAN_DIR).expanduser()


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None) -> FashionMnist:
    """Loads one split of Fashion-MNIST: "train" (60,000), "test" (10,000) or "all" (train then test).

    Raises:
        MissingDataError: the IDX files are not in the root; the message gives the install command.
        DataError: a file is present but truncated or corrupt; the message names the file.
    """
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")
    folder = fashion_mnist_root(root)
    parts = [_load_split(folder, name) for name in (("train", "test") if split == "all" else (split,))]
    if len(parts) == 1:
        images, labels = parts[0]
    else:
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        images.flags.writeable = labels.flags.writeable = False
    return FashionMnist(images=images, labels=labels)


def _load_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = (_find_file(folder, name) for name in _SPLIT_FILES[split])
    # The stat signature in the key makes a rewritten file miss the cache.
    return _read_split(images_path, _signature(images_path), labels_path, _signature(labels_path))


def _find_file(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise MissingDataError(
        f"Fashion-MNIST file {name}[.gz] is not in {folder}. "
        "Install it with `apt-get install dataset-fashion-mnist` (or `make data`), "
        f"or point ${ROOT_ENV} at a folder holding the IDX files."
    )


def _signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=4)
def _read_split(images_path: Path, _images_sig: tuple, labels_path: Path, _labels_sig: tuple
                ) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{images_path}: expected {IMAGE_SIZE}x{IMAGE_SIZE} images, "
                        f"found {images.shape[1]}x{images.shape[2]}.")
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{labels_path}: holds {labels.shape[0]} labels but {images_path.name} "
                        f"holds {images.shape[0]} images.")
    if labels.size and labels.max() >= len(CLASS_NAMES):
        bad = int(np.argmax(labels >= len(CLASS_NAMES)))
        raise DataError(f"{labels_path}: label {labels[bad]} at index {bad} is outside "
                        f"0..{len(CLASS_NAMES) - 1}.")
    labels = labels.astype(np.int64)
    labels.flags.writeable = False
    return images, labels


def read_idx(path: str | os.PathLike, ndim: int) -> np.ndarray:
    """Reads an unsigned-byte IDX file (gzipped when its name ends in .gz) into a read-only array.

    IDX layout: two zero bytes, a type code (0x08 = uint8), the number of dimensions, one
    big-endian uint32 per dimension, then the values in C order.

    Raises:
        DataError: wrong magic number or dimension count, or a length that does not match the
            header (truncated or padded file); the message names the file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path}: not a valid gzip file ({error}); reinstall the data.") from None
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header.")
    zero_a, zero_b, type_code, file_ndim = raw[:4]
    if zero_a or zero_b or type_code != _IDX_UBYTE:
        raise DataError(f"{path}: bad IDX magic number 0x{raw[:4].hex()}; "
                        f"expected 0x000008{ndim:02x} (unsigned bytes, {ndim} dimensions).")
    if file_ndim != ndim:
        raise DataError(f"{path}: IDX file has {file_ndim} dimensions, expected {ndim}.")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} of {header_size} bytes).")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header_size + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"{path}: IDX file {problem}: header dims {list(shape)} need {expected} "
                        f"bytes, found {len(raw)}.")
    # A view on the immutable bytes object, hence read-only without a copy.
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)
