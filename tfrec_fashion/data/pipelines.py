"""tf.data builders that models train on: sampled triplets, pair votes, fixed triplets, item images.

Sampled datasets (:func:`bpr_dataset`, :func:`outfit_ranking_dataset`,
:func:`ctl_triplet_dataset`) draw every batch afresh with the NumPy samplers of ``samplers.py``::

    Dataset.random(seed, rerandomize_each_iteration=True)   one 64-bit key per batch
      .map(tf.numpy_function(draw a batch with default_rng(key)), parallel, deterministic)

Why this shape rather than ``Dataset.from_generator``:

- A batch's draw depends only on its key, so parallel ``map`` calls cannot change the result and
  the same seed gives the same batches, in a fresh process too (keys also depend on TensorFlow's
  global seed when ``tf.random.set_seed`` was called, as every seeded tf op does).
- ``rerandomize_each_iteration`` gives each new iteration of the dataset (Keras ``fit`` starts one
  per epoch) new keys, still determined by the seed, so every epoch sees a fresh draw without any
  Python-side epoch counter; a generator would need hidden mutable state for that and would run
  on one Python thread.
- The samplers are vectorised, so one ``numpy_function`` call per *batch* costs little.

The datasets are finite (one epoch) and can be passed to ``model.fit(dataset, epochs=...)``
directly. Every dataset ends with ``.prefetch(tf.data.AUTOTUNE)``.
"""

from __future__ import annotations

import math
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from tfrec_fashion.data.dataset import Items, Outfits, PairRatings, Triplets
from tfrec_fashion.data.images import read_image
from tfrec_fashion.data.samplers import (BprTripletSampler, OutfitRankingSampler, ctl_triplets,
                                        pair_rating_arrays)
from tfrec_fashion.errors import ConfigError, DataError

_DECODE_BATCH = 256
_UINT64 = (1 << 64) - 1


# ---------------------------------------------------------------------------- sampled
def bpr_dataset(sampler: BprTripletSampler, batch_size: int, steps_per_epoch: int | None = None,
                epoch_size: int | None = None, seed: int = 0) -> tf.data.Dataset:
    """BPR triplets, redrawn every epoch: {"user", "pos_item", "neg_item"}, each int32 [batch],
    and "epoch" (the time epoch of the positive, TVBPR) when the sampler has ``epochs``.

    Args:
        sampler: draws (u, i, j) (see :class:`~tfrec_fashion.data.samplers.BprTripletSampler`).
        batch_size: triplets per batch (DVBPR: 128).
        steps_per_epoch: batches per epoch; or give ``epoch_size`` (triplets per epoch, the last
            batch may be smaller). Default: one triplet per training positive.
        seed: determines every batch of every epoch.
    """
    timed = sampler.epochs is not None
    names = ("user", "pos_item", "neg_item", "epoch") if timed else ("user", "pos_item", "neg_item")

    def draw(size: int, rng: np.random.Generator) -> list[np.ndarray]:
        return list(sampler.sample_with_epochs(size, rng) if timed else sampler.sample(size, rng))

    return _sampled_dataset(draw, names, ((),) * len(names), batch_size,
                            _epoch_sizes(batch_size, steps_per_epoch, epoch_size, len(sampler)),
                            seed)


def outfit_ranking_dataset(sampler: OutfitRankingSampler, batch_size: int,
                           steps_per_epoch: int | None = None, epoch_size: int | None = None,
                           seed: int = 0) -> tf.data.Dataset:
    """PAN / FHN training batches: {"user" int32 [batch], "positive", "negative" int32 [batch,
    n_slots]} (-1 = empty slot), redrawn every epoch like :func:`bpr_dataset`.

    Hard negatives are mined inside the input pipeline with ``sampler.user_scores_fn``, so they
    are scored by the model's weights at the time the batch is prepared (at most the prefetch
    buffer behind the step that trains on them): PAN's "online" mining.
    """
    def draw(size: int, rng: np.random.Generator) -> list[np.ndarray]:
        batch = sampler.sample(size, rng)
        return [batch["user"], batch["positive"], batch["negative"]]

    slots = (sampler.n_slots,)
    # A scorer (possibly set later) makes the draw depend on the model's weights: not pure.
    return _sampled_dataset(draw, ("user", "positive", "negative"), ((), slots, slots), batch_size,
                            _epoch_sizes(batch_size, steps_per_epoch, epoch_size, len(sampler)),
                            seed, pure=False)


def ctl_triplet_dataset(outfits: Outfits, item_category: np.ndarray, batch_size: int,
                        steps_per_epoch: int | None = None, epoch_size: int | None = None,
                        seed: int = 0) -> tf.data.Dataset:
    """Complete-the-look triplets of ``outfits`` (:func:`ctl_triplets`: anchor, a positive of
    another category from its outfit, a negative of the positive's category from another
    outfit), redrawn every batch like :func:`bpr_dataset`: {"anchor", "positive", "negative"},
    each int32 [batch].

    Each batch is a uniform draw (with replacement) from a fresh ``ctl_triplets`` table, one
    triplet per usable outfit, so anchors, positives and negatives are new every epoch while
    negatives always come from the whole ``outfits`` table. Default epoch: one triplet per
    outfit. Only the outfits given are read: pass the training outfits, never held-out ones.
    """
    def draw(size: int, rng: np.random.Generator) -> list[np.ndarray]:
        triplets = ctl_triplets(outfits, item_category, seed=int(rng.integers(1 << 62)))
        rows = rng.integers(0, len(triplets), size)
        return [triplets.anchor[rows], triplets.positive[rows], triplets.negative[rows]]

    return _sampled_dataset(draw, ("anchor", "positive", "negative"), ((),) * 3, batch_size,
                            _epoch_sizes(batch_size, steps_per_epoch, epoch_size, len(outfits)),
                            seed)


def _sampled_dataset(draw: Callable[[int, np.random.Generator], list[np.ndarray]],
                     names: tuple[str, ...], shapes: tuple[tuple[int, ...], ...],
                     batch_size: int, sizes: list[int], seed: int,
                     pure: bool = True) -> tf.data.Dataset:
    def numpy_draw(size: np.ndarray, key: np.ndarray) -> list[np.ndarray]:
        # The key is the batch's whole identity: same key -> same batch, whatever thread runs it.
        arrays = draw(int(size), np.random.default_rng([seed, int(key) & _UINT64]))
        return [np.asarray(a, np.int32) for a in arrays]

    def to_dict(size: tf.Tensor, key: tf.Tensor) -> dict[str, tf.Tensor]:
        arrays = tf.numpy_function(numpy_draw, [size, key], [tf.int32] * len(names),
                                   stateful=not pure)
        batch_dim = batch_size if all(s == batch_size for s in sizes) else None
        return {name: tf.ensure_shape(array, (batch_dim, *shape))
                for name, array, shape in zip(names, arrays, shapes)}

    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"`seed` must be a non-negative integer. Received: seed={seed!r}")
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    batches = tf.data.Dataset.zip(tf.data.Dataset.from_tensor_slices(np.asarray(sizes, np.int64)),
                                  keys)
    return batches.map(to_dict, num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True).prefetch(tf.data.AUTOTUNE)


def _epoch_sizes(batch_size: int, steps_per_epoch: int | None, epoch_size: int | None,
                 default_epoch_size: int) -> list[int]:
    """Sizes of the batches of one epoch."""
    batch_size = _positive_int(batch_size, "batch_size")
    if steps_per_epoch is not None and epoch_size is not None:
        raise ConfigError("Give `steps_per_epoch` or `epoch_size`, not both. Received: "
                          f"steps_per_epoch={steps_per_epoch}, epoch_size={epoch_size}")
    if steps_per_epoch is not None:
        return [batch_size] * _positive_int(steps_per_epoch, "steps_per_epoch")
    epoch_size = default_epoch_size if epoch_size is None else _positive_int(epoch_size,
                                                                              "epoch_size")
    steps = max(1, math.ceil(epoch_size / batch_size))
    return [batch_size] * (steps - 1) + [epoch_size - batch_size * (steps - 1)]


# ---------------------------------------------------------------------------- fixed tables
def pair_dataset(pairs: PairRatings | Mapping[str, np.ndarray], batch_size: int,
                 shuffle: bool = True, seed: int = 0) -> tf.data.Dataset:
    """PSA-Net pair votes in batches: {"user", "item_a", "item_b"} int32 and "label" float32 +-1.

    ``pairs`` is a ``PairRatings`` table or the dict of :func:`pair_rating_arrays`. With
    ``shuffle``, rows are reshuffled every epoch, deterministically from ``seed``.
    """
    columns = pair_rating_arrays(pairs) if isinstance(pairs, PairRatings) else dict(pairs)
    return _table_dataset(columns, batch_size, shuffle, seed)


def triplet_dataset(triplets: Triplets | Mapping[str, np.ndarray], batch_size: int,
                    shuffle: bool = True, seed: int = 0) -> tf.data.Dataset:
    """Item triplets in batches: {"anchor", "positive", "negative"}, each int32 [batch].

    ``triplets`` is a ``Triplets`` table (e.g. from :func:`ctl_triplets`) or a dict of the three
    arrays. With ``shuffle``, rows are reshuffled every epoch, deterministically from ``seed``.
    """
    if isinstance(triplets, Triplets):
        triplets = {"anchor": triplets.anchor, "positive": triplets.positive,
                    "negative": triplets.negative}
    return _table_dataset({k: np.asarray(v, np.int32) for k, v in triplets.items()}, batch_size,
                          shuffle, seed)


def _table_dataset(columns: dict[str, np.ndarray], batch_size: int, shuffle: bool,
                   seed: int) -> tf.data.Dataset:
    batch_size = _positive_int(batch_size, "batch_size")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise DataError(f"columns differ in length: {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise DataError(f"the table {sorted(columns)} is empty")
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        dataset = dataset.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------- images
def image_table(items: Items, image_size: tuple[int, int] | None = None,
                dataset_dir: str | Path | None = None) -> tf.Tensor:
    """Every item's image as float32 [n_items, height, width, 3] in [0, 1], rows in item order.

    Taken from ``items.images`` (uint8, in memory) when present, else decoded from
    ``items.image_paths`` (relative to ``dataset_dir``) with tf.io / tf.image in a parallel,
    prefetched tf.data pass; the returned tensor is the cache (decode once, index many times).

    Args:
        items: the item table.
        image_size: (height, width) to resize to (bilinear, antialiased); None keeps the size,
            which must then be the same for every image.
        dataset_dir: folder the image paths are relative to (``FashionDataset.load``'s folder).

    Raises:
        MissingDataError: an image file does not exist (the message names it).
        DataError: an image is corrupt or not decodable, an item has no image, or sizes differ
            with ``image_size=None`` (the message names the file).
    """
    if image_size is not None:
        image_size = (_positive_int(image_size[0], "image_size[0]"),
                      _positive_int(image_size[1], "image_size[1]"))
    if items.images is not None:
        return _images_in_memory(np.asarray(items.images), image_size)
    if items.image_paths is None:
        raise DataError("image_table: the items have neither in-memory images nor image paths")
    if dataset_dir is None:
        raise ConfigError("image_table: items.image_paths are relative to the dataset folder; "
                          "pass dataset_dir")
    return _images_on_disk(items, image_size, Path(dataset_dir))


def _images_in_memory(images: np.ndarray, image_size: tuple[int, int] | None) -> tf.Tensor:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise DataError("items.images must be uint8 [n_items, height, width, 3]. Received: "
                        f"dtype={images.dtype}, shape={images.shape}")
    images = tf.image.convert_image_dtype(tf.constant(images), tf.float32)
    if image_size is not None and tuple(images.shape[1:3]) != image_size:
        images = tf.clip_by_value(tf.image.resize(images, image_size, antialias=True), 0.0, 1.0)
    return images


def _images_on_disk(items: Items, image_size: tuple[int, int] | None,
                    directory: Path) -> tf.Tensor:
    paths = [directory / str(p) for p in items.image_paths]
    no_image = [str(items.ids[row]) for row, p in enumerate(items.image_paths) if not str(p)]
    if no_image:
        raise DataError(f"image_table: {len(no_image)} item(s) have no image (first: "
                        f"{no_image[0]!r}); every item needs one")
    for path in paths:
        if not path.is_file():
            read_image(path)  # raises MissingDataError naming the file
    if image_size is None:
        try:
            target = tuple(_decode(tf.io.read_file(str(paths[0]))).shape[:2])
        except tf.errors.InvalidArgumentError:
            _raise_undecodable(paths[0])
    else:
        target = image_size

    def decode(index: tf.Tensor, path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        image = _decode(tf.io.read_file(path))
        size = tf.shape(image)[:2]
        image = tf.clip_by_value(tf.image.resize(image, target, antialias=True), 0.0, 1.0)
        return index, image, size

    # A file that fails to decode is dropped by ignore_errors and named below from its index:
    # tf.image's own error message does not say which file it was reading.
    dataset = (tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), [str(p) for p in paths]))
               .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .ignore_errors().batch(_DECODE_BATCH).prefetch(tf.data.AUTOTUNE))
    indices, images, sizes = [], [], []
    for index, image, size in dataset:
        indices.append(index.numpy())
        images.append(image)
        sizes.append(size.numpy())
    decoded = np.concatenate(indices) if indices else np.zeros(0, np.int64)
    if len(decoded) < len(paths):
        _raise_undecodable(paths[int(np.setdiff1d(np.arange(len(paths)), decoded)[0])])
    if image_size is None:
        sizes = np.concatenate(sizes)
        differs = np.flatnonzero((sizes != np.asarray(target)).any(axis=1))
        if len(differs):
            size = tuple(sizes[differs[0]].tolist())
            raise DataError(f"image {paths[differs[0]]} is {size}, the first image is {target}; "
                            "pass image_size to resize them all")
    return tf.concat(images, axis=0)


def _raise_undecodable(path: Path) -> None:
    read_image(path)  # raises DataError naming the file when PIL cannot read it either
    raise DataError(f"image {path} could not be decoded by tf.image (JPEG, PNG, GIF, BMP or WebP "
                    "expected)")


def _decode(contents: tf.Tensor) -> tf.Tensor:
    image = tf.image.decode_image(contents, channels=3, expand_animations=False)
    return tf.image.convert_image_dtype(image, tf.float32)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)
