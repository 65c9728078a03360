"""tf.data pipelines: sampled batches (seeded, fresh per epoch), tables, and item images."""

import re

import numpy as np
import pytest
import scipy.sparse

import tfrec_fashion  # noqa: F401  (sets Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.data.dataset import FashionDataset, Items, Outfits, PairRatings, Triplets, Users
from tfrec_fashion.data.pipelines import (
    bpr_dataset, ctl_triplet_dataset, image_table, outfit_ranking_dataset, pair_dataset,
    triplet_dataset)
from tfrec_fashion.data.samplers import BprTripletSampler, OutfitRankingSampler
from tfrec_fashion.errors import ConfigError, DataError, MissingDataError


def _sampler():
    rng = np.random.default_rng(0)
    dense = rng.random((30, 50)) < 0.2
    dense[:, 0] = True
    return BprTripletSampler(scipy.sparse.csr_matrix(dense.astype(np.float32)), seed=0), dense


def _batches(dataset):
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset]


def _assert_same(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


# ---------------------------------------------------------------------------- BPR
def test_bpr_dataset_batches_dtypes_and_valid_triplets():
    sampler, dense = _sampler()
    dataset = bpr_dataset(sampler, batch_size=64, steps_per_epoch=5, seed=1)
    assert dataset.element_spec == {name: tf.TensorSpec((64,), tf.int32)
                                    for name in ("user", "pos_item", "neg_item")}
    batches = _batches(dataset)
    assert len(batches) == 5
    for batch in batches:
        assert dense[batch["user"], batch["pos_item"]].all()
        assert not dense[batch["user"], batch["neg_item"]].any()


def test_bpr_dataset_reproducible_and_fresh_each_epoch():
    sampler, _ = _sampler()
    dataset = bpr_dataset(sampler, batch_size=32, steps_per_epoch=3, seed=4)
    epoch_1, epoch_2 = _batches(dataset), _batches(dataset)
    assert not np.array_equal(epoch_1[0]["neg_item"], epoch_2[0]["neg_item"])
    rebuilt = bpr_dataset(sampler, batch_size=32, steps_per_epoch=3, seed=4)
    _assert_same(_batches(rebuilt), epoch_1)
    _assert_same(_batches(rebuilt), epoch_2)
    other_seed = _batches(bpr_dataset(sampler, batch_size=32, steps_per_epoch=3, seed=5))
    assert not np.array_equal(other_seed[0]["neg_item"], epoch_1[0]["neg_item"])
    # batches within an epoch differ too
    assert not np.array_equal(epoch_1[0]["neg_item"], epoch_1[1]["neg_item"])


def test_bpr_dataset_epoch_size_and_default():
    sampler, dense = _sampler()
    sizes = [len(b["user"]) for b in _batches(bpr_dataset(sampler, 64, epoch_size=150))]
    assert sizes == [64, 64, 22]
    sizes = [len(b["user"]) for b in _batches(bpr_dataset(sampler, 100))]
    assert sum(sizes) == dense.sum()  # default: one triplet per training positive
    with pytest.raises(ConfigError, match="Give `steps_per_epoch` or `epoch_size`, not both"):
        bpr_dataset(sampler, 64, steps_per_epoch=2, epoch_size=10)
    with pytest.raises(ConfigError, match=r"`batch_size` must be a positive integer. "
                                          r"Received: batch_size=0"):
        bpr_dataset(sampler, 0)
    with pytest.raises(ConfigError, match=r"`seed` must be a non-negative integer"):
        bpr_dataset(sampler, 8, seed=-1)


def test_bpr_dataset_trains_with_keras_fit():
    sampler, _ = _sampler()
    dataset = bpr_dataset(sampler, batch_size=32, steps_per_epoch=4, seed=0)
    user = tf.keras.Input((), dtype=tf.int32, name="user")
    pos = tf.keras.Input((), dtype=tf.int32, name="pos_item")
    neg = tf.keras.Input((), dtype=tf.int32, name="neg_item")
    items = tf.keras.layers.Embedding(50, 4)
    users = tf.keras.layers.Embedding(30, 4)
    x_uij = tf.keras.layers.Dot(axes=1)([users(user), tf.keras.layers.Subtract()(
        [items(pos), items(neg)])])
    model = tf.keras.Model({"user": user, "pos_item": pos, "neg_item": neg}, x_uij)
    model.add_loss(-tf.reduce_mean(tf.math.log_sigmoid(x_uij)))
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
    history = model.fit(dataset, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3


# ---------------------------------------------------------------------------- outfits
def test_outfit_ranking_dataset_shapes_and_seed():
    rng = np.random.default_rng(0)
    outfits = Outfits(ids=np.array([f"o{k}" for k in range(12)]),
                      user=rng.integers(0, 3, 12).astype(np.int32),
                      items=np.stack([rng.integers(0, 5, 12), rng.integers(5, 10, 12)], 1)
                      .astype(np.int32), slots=("top", "bottom"))
    sampler = OutfitRankingSampler(
        outfits, {"top": np.arange(5), "bottom": np.arange(5, 10)},
        user_scores_fn=lambda users, candidates: candidates.sum(axis=2).astype(np.float32),
        pool_size=3, seed=0)
    dataset = outfit_ranking_dataset(sampler, batch_size=8, steps_per_epoch=2, seed=3)
    assert dataset.element_spec == {"user": tf.TensorSpec((8,), tf.int32),
                                    "positive": tf.TensorSpec((8, 2), tf.int32),
                                    "negative": tf.TensorSpec((8, 2), tf.int32)}
    first = _batches(dataset)
    assert all(((b["positive"] != b["negative"]).sum(axis=1) == 1).all() for b in first)
    _assert_same(_batches(outfit_ranking_dataset(sampler, 8, steps_per_epoch=2, seed=3)), first)


# ---------------------------------------------------------------------------- tables
def test_pair_dataset_dtypes_shuffle_and_reproducibility():
    n = 50
    pairs = PairRatings(user=np.arange(n, dtype=np.int32), item_a=np.zeros(n, np.int32),
                        item_b=np.ones(n, np.int32),
                        label=np.where(np.arange(n) % 2 == 0, 1, -1).astype(np.int8))
    dataset = pair_dataset(pairs, batch_size=16, seed=2)
    assert dataset.element_spec == {
        "user": tf.TensorSpec((None,), tf.int32), "item_a": tf.TensorSpec((None,), tf.int32),
        "item_b": tf.TensorSpec((None,), tf.int32), "label": tf.TensorSpec((None,), tf.float32)}
    epoch_1, epoch_2 = _batches(dataset), _batches(dataset)
    users = np.concatenate([b["user"] for b in epoch_1])
    assert sorted(users.tolist()) == list(range(n))       # every row once
    assert users.tolist() != list(range(n))                # shuffled
    labels = np.concatenate([b["label"] for b in epoch_1])
    np.testing.assert_array_equal(labels, np.where(users % 2 == 0, 1.0, -1.0))  # rows intact
    assert not np.array_equal(epoch_1[0]["user"], epoch_2[0]["user"])  # reshuffled per epoch
    _assert_same(_batches(pair_dataset(pairs, batch_size=16, seed=2)), epoch_1)
    in_order = _batches(pair_dataset(pairs, batch_size=16, shuffle=False))
    assert np.concatenate([b["user"] for b in in_order]).tolist() == list(range(n))


def test_triplet_dataset():
    triplets = Triplets(anchor=np.arange(10, dtype=np.int32), positive=np.arange(10, 20),
                        negative=np.arange(20, 30))
    batches = _batches(triplet_dataset(triplets, batch_size=4, seed=0))
    assert [len(b["anchor"]) for b in batches] == [4, 4, 2]
    for b in batches:
        assert b["positive"].dtype == np.int32
        np.testing.assert_array_equal(b["positive"], b["anchor"] + 10)
    _assert_same(_batches(triplet_dataset(triplets, batch_size=4, seed=0)), batches)
    with pytest.raises(DataError, match=r"columns differ in length: \{'anchor': 2, 'positive': 1"):
        triplet_dataset({"anchor": [1, 2], "positive": [1], "negative": [1, 2]}, 4)
    with pytest.raises(DataError, match="is empty"):
        triplet_dataset({"anchor": [], "positive": [], "negative": []}, 4)


# ---------------------------------------------------------------------------- images
def _image_dataset(n=5, size=(12, 10)):
    rng = np.random.default_rng(0)
    return FashionDataset(
        name="img", users=Users(ids=np.array(["u"])),
        items=Items(ids=np.array([f"i{k}" for k in range(n)]), category=np.array(["top"] * n),
                    images=rng.integers(0, 256, (n, *size, 3)).astype(np.uint8)))


def test_ctl_triplet_dataset_follows_the_samplers_rules_fresh_each_epoch():
    rng = np.random.default_rng(0)
    category = np.array(["top"] * 10 + ["bottom"] * 10 + ["shoes"] * 10)
    items = np.stack([rng.integers(0, 10, 40), rng.integers(10, 20, 40),
                      rng.integers(20, 30, 40)], 1).astype(np.int32)
    outfits = Outfits(ids=np.array([f"o{k}" for k in range(40)]),
                      user=np.zeros(40, np.int32), items=items, slots=("top", "bottom", "shoes"))
    train = Outfits(ids=outfits.ids[:30], user=outfits.user[:30], items=items[:30],
                    slots=outfits.slots)
    dataset = ctl_triplet_dataset(train, category, batch_size=16, seed=3)
    first, second = _batches(dataset), _batches(dataset)
    assert [len(b["anchor"]) for b in first] == [16, 14]  # one triplet per outfit
    rows = [set(row) for row in items[:30]]
    for batch in first:
        assert all(v.dtype == np.int32 for v in batch.values())
        for a, p, n in zip(batch["anchor"], batch["positive"], batch["negative"]):
            assert category[a] != category[p] and category[n] == category[p]
            assert any(a in row and p in row for row in rows)  # from one training outfit
            assert any(n in row for row in rows)
            assert not all(n in row for row in rows if a in row and p in row)
    assert any((x["anchor"] != y["anchor"]).any() for x, y in zip(first, second))
    _assert_same(first, _batches(ctl_triplet_dataset(train, category, batch_size=16, seed=3)))


def test_image_table_in_memory_and_from_disk_agree(tmp_path):
    dataset = _image_dataset()
    table = image_table(dataset.items)
    assert table.dtype == tf.float32 and table.shape == (5, 12, 10, 3)
    np.testing.assert_allclose(table.numpy(), dataset.items.images / 255.0, atol=1e-6)
    resized = image_table(dataset.items, image_size=(8, 6))
    assert resized.shape == (5, 8, 6, 3)
    assert 0.0 <= float(tf.reduce_min(resized)) and float(tf.reduce_max(resized)) <= 1.0

    dataset.save(tmp_path)
    loaded = FashionDataset.load(tmp_path)
    assert loaded.items.images is None
    from_disk = image_table(loaded.items, dataset_dir=tmp_path)
    np.testing.assert_allclose(from_disk.numpy(), table.numpy(), atol=1e-6)
    np.testing.assert_allclose(image_table(loaded.items, (8, 6), dataset_dir=tmp_path).numpy(),
                               resized.numpy(), atol=1e-5)
    with pytest.raises(ConfigError, match="pass dataset_dir"):
        image_table(loaded.items)


def test_image_table_names_corrupt_and_missing_files(tmp_path):
    _image_dataset().save(tmp_path)
    items = FashionDataset.load(tmp_path).items
    corrupt = tmp_path / "images" / "3.png"
    corrupt.write_bytes(corrupt.read_bytes()[:60])  # truncated PNG
    with pytest.raises(DataError, match=re.escape(str(corrupt)) + " is corrupt or not an image"):
        image_table(items, dataset_dir=tmp_path)
    corrupt.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=re.escape(str(corrupt))):
        image_table(items, image_size=(8, 8), dataset_dir=tmp_path)
    first = tmp_path / "images" / "0.png"
    first.write_bytes(b"garbage")  # the first image fixes the size when image_size is None
    with pytest.raises(DataError, match=re.escape(str(first)) + " is corrupt"):
        image_table(items, dataset_dir=tmp_path)
    missing = tmp_path / "images" / "1.png"
    missing.unlink()
    with pytest.raises(MissingDataError, match=re.escape(str(missing)) + " does not exist"):
        image_table(items, dataset_dir=tmp_path)


def test_image_table_size_mismatch_and_items_without_image(tmp_path):
    _image_dataset(n=3).save(tmp_path / "a")
    _image_dataset(n=3, size=(9, 9)).save(tmp_path / "b")
    items = FashionDataset.load(tmp_path / "a").items
    items.image_paths = np.array(["a/images/0.png", "b/images/1.png", "a/images/2.png"])
    with pytest.raises(DataError, match=r"b/images/1.png is \(9, 9\), the first image is "
                                        r"\(12, 10\); pass image_size"):
        image_table(items, dataset_dir=tmp_path)
    assert image_table(items, (9, 9), dataset_dir=tmp_path).shape == (3, 9, 9, 3)
    items.image_paths = np.array(["a/images/0.png", "", "a/images/2.png"])
    with pytest.raises(DataError, match=r"1 item\(s\) have no image \(first: 'i1'\)"):
        image_table(items, dataset_dir=tmp_path)
    bad = Items(ids=np.array(["x"]), category=np.array(["top"]),
                images=np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(DataError, match=r"items.images must be uint8 .* dtype=float32"):
        image_table(bad)


def test_bpr_dataset_carries_the_epoch_of_the_positive_when_the_sampler_has_epochs():
    _, dense = _sampler()
    epochs = np.arange(30 * 50).reshape(30, 50) % 7
    sampler = BprTripletSampler(scipy.sparse.csr_matrix(dense.astype(np.float32)), seed=0,
                                epochs=epochs)
    dataset = bpr_dataset(sampler, batch_size=32, steps_per_epoch=3, seed=2)
    assert dataset.element_spec == {name: tf.TensorSpec((32,), tf.int32)
                                    for name in ("user", "pos_item", "neg_item", "epoch")}
    batches = _batches(dataset)
    assert len(batches) == 3
    for batch in batches:
        assert batch["epoch"].dtype == np.int32
        np.testing.assert_array_equal(batch["epoch"], epochs[batch["user"], batch["pos_item"]])
    # the same seed draws the same triplets with and without epochs
    plain = _batches(bpr_dataset(_sampler()[0], batch_size=32, steps_per_epoch=3, seed=2))
    _assert_same(plain, [{k: b[k] for k in ("user", "pos_item", "neg_item")} for b in batches])
    assert "epoch" not in plain[0]
