"""Fashion-MNIST loader: the real Debian files (when installed) and IDX parsing errors on fixtures."""

import gzip
import struct
import time

import numpy as np
import pytest

from tfrec_fashion.data.fashion_mnist import CLASS_NAMES, load_fashion_mnist, read_idx
from tfrec_fashion.errors import DataError, MissingDataError


def _idx(values: np.ndarray) -> bytes:
    """Encodes a uint8 array as IDX bytes: 0x0000 08 <ndim>, big-endian uint32 dims, data."""
    header = bytes([0, 0, 0x08, values.ndim]) + struct.pack(f">{values.ndim}I", *values.shape)
    return header + values.astype(np.uint8).tobytes()


def _write_split(folder, prefix, images, labels, compress=True):
    suffix = ".gz" if compress else ""
    pack = gzip.compress if compress else (lambda data: data)
    (folder / f"{prefix}-images-idx3-ubyte{suffix}").write_bytes(pack(_idx(images)))
    (folder / f"{prefix}-labels-idx1-ubyte{suffix}").write_bytes(pack(_idx(labels)))


def _tiny_world(folder, compress=True):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), np.array([0, 9, 4], np.uint8)
    test = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8), np.array([7, 1], np.uint8)
    _write_split(folder, "train", *train, compress=compress)
    _write_split(folder, "t10k", *test, compress=compress)
    return train, test


@pytest.mark.real_data
def test_real_splits_have_published_sizes_and_balanced_classes(real_data):
    start = time.perf_counter()
    train, test = real_data(load_fashion_mnist, "train"), real_data(load_fashion_mnist, "test")
    assert time.perf_counter() - start < 5.0
    assert train.images.shape == (60_000, 28, 28) and test.images.shape == (10_000, 28, 28)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(train.labels, minlength=10), [6_000] * 10)
    np.testing.assert_array_equal(np.bincount(test.labels, minlength=10), [1_000] * 10)
    assert train.class_names == CLASS_NAMES and len(CLASS_NAMES) == 10
    assert train.class_names[0] == "T-shirt/top" and train.class_names[9] == "Ankle boot"
    # Real images, not blanks: every class has some ink and some background.
    assert train.images.min() == 0 and train.images.max() == 255
    assert 0.1 < (train.images > 0).mean() < 0.9


@pytest.mark.real_data
def test_real_all_is_train_then_test(real_data):
    everything = real_data(load_fashion_mnist, "all")
    train, test = real_data(load_fashion_mnist, "train"), real_data(load_fashion_mnist, "test")
    assert len(everything) == 70_000 and everything.images.shape == (70_000, 28, 28)
    np.testing.assert_array_equal(everything.labels[:60_000], train.labels)
    np.testing.assert_array_equal(everything.images[60_000:], test.images)


def test_fixture_round_trip_through_env_root(tmp_path, monkeypatch):
    (train_images, train_labels), (test_images, test_labels) = _tiny_world(tmp_path)
    monkeypatch.setenv("TFREC_FASHION_MNIST_DIR", str(tmp_path))
    train = load_fashion_mnist("train")
    np.testing.assert_array_equal(train.images, train_images)
    np.testing.assert_array_equal(train.labels, [0, 9, 4])
    everything = load_fashion_mnist("all")
    np.testing.assert_array_equal(everything.labels, [0, 9, 4, 7, 1])
    np.testing.assert_array_equal(everything.images[3:], test_images)
    assert not train.images.flags.writeable  # shared by the in-process cache


def test_uncompressed_files_and_root_argument(tmp_path):
    (_, _), (test_images, _) = _tiny_world(tmp_path, compress=False)
    test = load_fashion_mnist("test", root=tmp_path)
    np.testing.assert_array_equal(test.images, test_images)


def test_truncated_image_file_names_the_file(tmp_path):
    _tiny_world(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*truncated.*2368 bytes, found 2268"):
        load_fashion_mnist("train", root=tmp_path)


def test_truncated_gzip_names_the_file(tmp_path):
    _tiny_world(tmp_path)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz.*not a valid gzip file"):
        load_fashion_mnist("test", root=tmp_path)


@pytest.mark.parametrize("header, message", [
    (bytes([0, 0, 0x0D, 3]), "bad IDX magic number 0x00000d03"),   # float32 type code
    (bytes([1, 0, 0x08, 3]), "bad IDX magic number"),
    (bytes([0, 0, 0x08, 1]), "has 1 dimensions, expected 3"),
    (bytes([0, 0, 0x08, 3, 0, 0]), "truncated IDX header"),
    (b"\x00", "too short for an IDX header"),
])
def test_corrupt_header_names_the_file_and_the_problem(tmp_path, header, message):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(header)
    with pytest.raises(DataError, match=rf"images-idx3-ubyte: .*{message}"):
        read_idx(path, ndim=3)


def test_trailing_bytes_are_rejected(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(_idx(np.array([1, 2], np.uint8)) + b"\x00")
    with pytest.raises(DataError, match="has trailing bytes: header dims \\[2\\] need 10 bytes, found 11"):
        read_idx(path, ndim=1)


def test_label_count_and_range_are_checked(tmp_path):
    images = np.zeros((2, 28, 28), np.uint8)
    _write_split(tmp_path, "train", images, np.array([1], np.uint8))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: holds 1 labels but .* 2 images"):
        load_fashion_mnist("train", root=tmp_path)
    _write_split(tmp_path, "train", images, np.array([1, 10], np.uint8))
    with pytest.raises(DataError, match="label 10 at index 1 is outside 0..9"):
        load_fashion_mnist("train", root=tmp_path)


def test_wrong_image_size_is_rejected(tmp_path):
    _write_split(tmp_path, "train", np.zeros((1, 32, 32), np.uint8), np.array([1], np.uint8))
    with pytest.raises(DataError, match="expected 28x28 images, found 32x32"):
        load_fashion_mnist("train", root=tmp_path)


def test_missing_root_says_how_to_install(tmp_path):
    with pytest.raises(MissingDataError, match="apt-get install dataset-fashion-mnist") as info:
        load_fashion_mnist("train", root=tmp_path / "nowhere")
    assert "make data" in str(info.value) and "train-images-idx3-ubyte" in str(info.value)


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="Received: split='validation'"):
        load_fashion_mnist("validation")
