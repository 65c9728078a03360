"""Fashion-MNIST world: pixels drive the planted tastes, the trend shows, save/load round-trips.

Numbers measured on ``FashionMnistWorld.tiny(seed=0)`` (400 items, 300 users, 20 interactions each)
are quoted beside each threshold; seeds 1-3 give the same picture.
"""

import dataclasses
import gzip
import os
import struct

import numpy as np
import pytest

from tfrec_fashion.config import from_dict, tagged
from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.fashion_mnist_world import (
    LEVELS,
    SLOT_OF_CLASS,
    VISUAL_ATTRIBUTES,
    FashionMnistWorld,
    score_at_epoch,
    time_epochs,
)
from tfrec_fashion.data.sources import DATA_SOURCES
from tfrec_fashion.errors import ConfigError, MissingDataError
from tfrec_fashion.metrics import per_user_auc_values


def _build_real(config):
    """Builds ``config``, or skips (fails under TFREC_FASHION_REQUIRE_DATA=1) without the data."""
    try:
        return config.build()
    except MissingDataError as error:
        if os.environ.get("TFREC_FASHION_REQUIRE_DATA") == "1":
            pytest.fail(f"TFREC_FASHION_REQUIRE_DATA=1 but Fashion-MNIST is missing: {error}")
        pytest.skip(f"Fashion-MNIST not installed (`apt-get install dataset-fashion-mnist`): "
                    f"{error}")


@pytest.fixture(scope="module")
def world():
    return _build_real(FashionMnistWorld.tiny(seed=0))


def _per_user_auc(scores, positives, exclude, item_mask=None):
    """The library's per-user AUC (mean over defined users) and how many users were defined."""
    values = per_user_auc_values(np.broadcast_to(scores, exclude.shape), positives, exclude,
                                 item_mask)
    defined = ~np.isnan(values)
    return float(values[defined].mean()), int(defined.sum())


def _split(dataset, test_mask):
    """Dense [n_users, n_items] indicators of the interactions in / out of ``test_mask``."""
    shape = (dataset.n_users, dataset.n_items)
    test, train = np.zeros(shape, bool), np.zeros(shape, bool)
    t = dataset.interactions
    test[t.user[test_mask], t.item[test_mask]] = True
    train[t.user[~test_mask], t.item[~test_mask]] = True
    return train, test


def _visual_part(truth):
    return truth["visual_taste"] @ truth["visual_code"].T


@pytest.mark.real_data
def test_registered_and_built_from_a_tagged_config(world, assert_close):
    @dataclasses.dataclass
    class Section:
        data: object = tagged(DATA_SOURCES)

    section = from_dict(Section, {"data": {"name": "fashion_mnist_world", "seed": 0,
                                           "n_items": 400, "n_users": 300}})
    assert section.data == FashionMnistWorld.tiny(seed=0)
    assert DATA_SOURCES.classes["fashion_mnist_world"] is FashionMnistWorld
    with pytest.raises(ConfigError, match="trend_attribute"):
        from_dict(Section, {"data": {"name": "fashion_mnist_world", "trend_attribute": "colour"}})

    items = world.items
    assert world.counts() == {"users": 300, "items": 400, "interactions": 6000,
                              "ratings": 9000, "pair_ratings": 6000, "expert_pairs": 1000}
    assert items.images.shape == (400, 28, 28, 3) and items.images.dtype == np.uint8
    assert (items.images[..., 0] == items.images[..., 2]).all()   # grey repeated on RGB
    assert items.features.shape == (400, 32) and items.features.dtype == np.float32
    # Stratified: 40 of each class; the slot follows the class.
    names, counts = np.unique(items.attributes["class_name"], return_counts=True)
    assert len(names) == 10 and (counts == 40).all()
    slots = [SLOT_OF_CLASS[c] for c in items.attributes["class_name"]]
    np.testing.assert_array_equal(items.category, slots)
    assert set(items.category) == {"top", "bottom", "dress", "shoes", "bag"}
    for attribute in VISUAL_ATTRIBUTES:
        share = np.mean(items.attributes[attribute][:, None] == np.array(LEVELS), axis=0)
        assert (share > 0.25).all(), (attribute, share)     # tertiles
    assert world.metadata["source"] == "fashion-mnist (MIT)"
    # The stored score is exactly the documented sum of its parts.
    truth = world.truth
    recomposed = (_visual_part(truth) + truth["cf_user"] @ truth["cf_item"].T
                  + truth["popularity"][None, :])
    # Summed in float64 and rounded to float32 there, from float32 parts in float32 here: one
    # ulp per term for the rounded inputs and one for the sum, at the size of the n terms.
    taste, code = truth["visual_taste"], truth["visual_code"]
    size = (np.abs(taste) @ np.abs(code).T + np.abs(truth["cf_user"]) @ np.abs(truth["cf_item"]).T
            + np.abs(truth["popularity"]))
    n = taste.shape[1] + truth["cf_user"].shape[1] + 1
    assert_close(truth["user_item_score"], recomposed, ulps=n + 1, scale=size.max())
    # Each user has distinct items and strictly increasing time stamps.
    t = world.interactions
    assert len(np.unique(t.user.astype(np.int64) * 400 + t.item)) == len(t)
    assert (np.diff(t.timestamp.reshape(300, 20), axis=1) > 0).all()


@pytest.mark.real_data
def test_same_seed_same_world_other_seed_other_world(world):
    again = _build_real(FashionMnistWorld.tiny(seed=0))
    np.testing.assert_array_equal(again.items.ids, world.items.ids)
    np.testing.assert_array_equal(again.items.images, world.items.images)
    np.testing.assert_array_equal(again.items.features, world.items.features)
    for field in ("user", "item", "timestamp"):
        np.testing.assert_array_equal(getattr(again.interactions, field),
                                      getattr(world.interactions, field))
    for key, value in world.truth.items():
        np.testing.assert_array_equal(again.truth[key], value)
    other = _build_real(FashionMnistWorld.tiny(seed=1))
    assert len(np.intersect1d(other.items.ids, world.items.ids)) < 20


@pytest.mark.real_data
def test_visual_tastes_are_a_function_of_the_pixels(world):
    features = np.c_[world.items.features, np.ones(world.n_items)].astype(np.float64)
    visual = _visual_part(world.truth).T                              # [n_items, n_users]
    order = np.random.default_rng(0).permutation(world.n_items)
    fit, held_out = order[:200], order[200:]
    gram = features[fit].T @ features[fit]
    weights = np.linalg.solve(gram + 1e-2 * np.trace(gram) / len(gram) * np.eye(len(gram)),
                              features[fit].T @ visual[fit])
    residual = visual[held_out] - features[held_out] @ weights
    centred = visual[held_out] - visual[held_out].mean(0)
    r2 = 1 - (residual ** 2).sum(0) / (centred ** 2).sum(0)
    # Ridge on the 32 PCA pixel features, on items it never saw: mean R^2 0.54 over users (a
    # linear probe; the rest is texture and class boundaries that a CNN can learn).
    assert r2.mean() > 0.4, r2.mean()


@pytest.mark.real_data
def test_oracle_beats_popularity_and_visual_ranks_cold_items(world):
    t = world.interactions
    last = np.zeros(len(t), bool)
    last[np.flatnonzero(np.r_[t.user[1:] != t.user[:-1], True])] = True  # sorted by user, time
    train, test = _split(world, last)
    train_count = train.sum(0)
    cold = train_count < 5
    popularity = np.broadcast_to(train_count.astype(float), train.shape)
    truth = world.truth
    oracle, n_users = _per_user_auc(truth["user_item_score"], test, train)
    popular, _ = _per_user_auc(popularity, test, train)
    # Leave-last-out over 300 users: oracle 0.91, popularity 0.71.
    assert n_users == 300 and oracle > 0.85 and oracle > popular + 0.1, (oracle, popular)
    # A sizeable long tail: 34.5 % of items have < 5 training interactions.
    assert 0.2 < cold.mean() < 0.8, cold.mean()
    # Cold test items (38 users): visual part alone 0.77, popularity 0.63, oracle 0.91.
    visual_cold, n_cold_users = _per_user_auc(_visual_part(truth), test, train, cold)
    popular_cold, _ = _per_user_auc(popularity, test, train, cold)
    assert n_cold_users >= 20 and visual_cold > 0.65, visual_cold
    assert visual_cold > popular_cold + 0.05, (visual_cold, popular_cold)


@pytest.mark.real_data
def test_new_items_need_pixels_item_ids_cannot_rank_them(world):
    # Hold out the last epoch: the new arrivals (released then) have no training interaction,
    # so anything learnt from item ids alone ties them all (AUC exactly 0.5).
    epoch = time_epochs(world)
    train, test = _split(world, epoch == epoch.max())
    unseen = train.sum(0) == 0
    assert unseen.sum() >= 30 and unseen[world.truth["release_epoch"] == 3].all()
    id_only = np.broadcast_to(train.sum(0).astype(float), train.shape)
    id_auc, n_users = _per_user_auc(id_only, test, train, unseen)
    visual_auc, _ = _per_user_auc(_visual_part(world.truth), test, train, unseen)
    # Over the 226 users who picked an unseen item: id-only 0.50, visual part alone 0.81.
    assert n_users >= 50 and id_auc == pytest.approx(0.5), id_auc
    assert visual_auc > 0.65, visual_auc


@pytest.mark.real_data
def test_trend_raises_the_share_of_the_trending_attribute(world):
    truth, epoch = world.truth, time_epochs(world)
    np.testing.assert_allclose(truth["trend"], [-0.5, -1 / 3, -1 / 6, 0.0], atol=1e-6)
    np.testing.assert_array_equal(score_at_epoch(truth, 3), truth["user_item_score"])
    assert np.bincount(epoch).tolist() == [1500] * 4

    def high_share(dataset):
        level = dataset.items.attributes["intensity"][dataset.interactions.item]
        epochs = time_epochs(dataset)
        return np.array([np.mean(level[epochs == e] == "high") for e in range(4)])

    # Share of high-intensity items per epoch: 0.12, 0.20, 0.29, 0.35.
    share = high_share(world)
    assert (np.diff(share) > 0).all() and share[-1] - share[0] > 0.15, share
    flat = high_share(_build_real(FashionMnistWorld.tiny(seed=0, trend_strength=0.0)))
    assert np.ptp(flat) < 0.05, flat


@pytest.mark.real_data
def test_save_load_round_trip(world, tmp_path):
    loaded = FashionDataset.load(world.save(tmp_path / "world"), load_images=True)
    np.testing.assert_array_equal(loaded.items.images, world.items.images)
    np.testing.assert_array_equal(loaded.items.features, world.items.features)
    np.testing.assert_array_equal(loaded.items.ids, world.items.ids)
    np.testing.assert_array_equal(loaded.items.category, world.items.category)
    assert loaded.items.attributes.keys() == world.items.attributes.keys()
    for name, values in world.items.attributes.items():
        np.testing.assert_array_equal(loaded.items.attributes[name], values)
    for field in ("user", "item", "timestamp"):
        np.testing.assert_array_equal(getattr(loaded.interactions, field),
                                      getattr(world.interactions, field))
    assert loaded.truth.keys() == world.truth.keys()
    for key, value in world.truth.items():
        np.testing.assert_array_equal(loaded.truth[key], value)
    assert loaded.metadata["config"] == dataclasses.asdict(FashionMnistWorld.tiny(seed=0))
    np.testing.assert_array_equal(time_epochs(loaded), time_epochs(world))


# ------------------------------------------------------------------ without the real data
def _write_fixture(folder, per_class=12):
    """Fake Fashion-MNIST IDX files: per class, blobs of a class-dependent size and brightness."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
    rows, cols = np.mgrid[:28, :28]
    radius = 4 + labels[:, None, None] + rng.integers(0, 3, (len(labels), 1, 1))
    inside = (rows - 14) ** 2 + (cols - 14) ** 2 < radius ** 2
    images = (inside * rng.integers(60, 256, (len(labels), 1, 1))).astype(np.uint8)

    def idx(values):
        header = bytes([0, 0, 0x08, values.ndim]) + struct.pack(f">{values.ndim}I", *values.shape)
        return gzip.compress(header + values.tobytes())

    for prefix in ("train", "t10k"):
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(idx(images))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(idx(labels))


def test_builds_from_fixture_files_at_another_size(tmp_path):
    _write_fixture(tmp_path)
    config = FashionMnistWorld(n_items=50, n_users=20, interactions_per_user=6, image_size=32,
                               feature_dim=8, n_time_epochs=3, root=str(tmp_path))
    world = config.build()
    assert world.items.images.shape == (50, 32, 32, 3) and world.items.features.shape == (50, 8)
    assert world.counts()["interactions"] == 120
    assert np.bincount(time_epochs(world)).tolist() == [40, 40, 40]
    new = world.truth["release_epoch"] == 2
    assert new.sum() == 5 and not np.isin(world.interactions.item[time_epochs(world) < 2],
                                          np.flatnonzero(new)).any()


def test_missing_fashion_mnist_says_how_to_install(tmp_path):
    with pytest.raises(MissingDataError, match="apt-get install dataset-fashion-mnist"):
        FashionMnistWorld.tiny(root=str(tmp_path / "nowhere")).build()


@pytest.mark.parametrize("overrides, message", [
    ({"visual_weight": 1.5}, "Received: visual_weight=1.5"),
    ({"n_items": 5}, "Received: n_items=5"),
    ({"interactions_per_user": 360}, "below the 360 items released in the first epoch"),
    ({"trend_attribute": "colour"}, "Received: trend_attribute='colour'"),
    ({"n_time_epochs": 0}, "Received: n_time_epochs=0"),
])
def test_bad_config_is_rejected_with_the_received_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        FashionMnistWorld.tiny(**overrides)
