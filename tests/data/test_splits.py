"""Splits: k-core filtering, leave-one-out (time / random), per-user rating splits, bad input."""

import numpy as np
import pytest

from tfrec_fashion.data.dataset import (
    FashionDataset, Interactions, Items, Outfits, PairRatings, Ratings, Users)
from tfrec_fashion.data.splits import (
    k_core_filter, leave_one_out, split_ratings_by_user, time_epochs)
from tfrec_fashion.errors import ConfigError, DataError

N_ITEMS = 12


def _interactions(rows):
    """rows: (user, item, timestamp) tuples."""
    user, item, timestamp = (np.array(c) for c in zip(*rows))
    return Interactions(user=user.astype(np.int32), item=item.astype(np.int32),
                        timestamp=timestamp.astype(np.int64))


def _random_interactions(n_users=40, per_user=(3, 9), seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(N_ITEMS, size=rng.integers(*per_user), replace=False)
        rows += [(u, i, t) for i, t in zip(items, rng.permutation(1000)[:len(items)])]
    order = rng.permutation(len(rows))  # rows not grouped by user
    return _interactions([rows[k] for k in order])


def _dataset():
    # user 0: 5 items, user 1: 4 items (+1 repeat), user 2: 6 items, user 3: 2 items
    rows = [(0, i, 10 + i) for i in range(5)] + [(1, i, 20 + i) for i in range(4)] + [(1, 0, 99)] \
        + [(2, i, 30 + i) for i in range(6)] + [(3, 1, 5), (3, 2, 6)]
    return FashionDataset(
        name="tiny",
        users=Users(ids=np.array(["a", "b", "c", "d"]),
                    features={"age": np.array([20, 30, 40, 50])}),
        items=Items(ids=np.array([f"i{k}" for k in range(N_ITEMS)]),
                    category=np.array(["top", "bottom", "shoes"] * 4)),
        interactions=_interactions(rows),
        ratings=Ratings(user=np.array([1, 2, 3], np.int32), item=np.array([0, 1, 2], np.int32),
                        value=np.array([1, 2, 3], np.float32)),
        pair_ratings=PairRatings(user=np.array([0, 1, 2], np.int32), item_a=np.zeros(3, np.int32),
                                 item_b=np.ones(3, np.int32), label=np.array([1, -1, 1], np.int8)),
        outfits=Outfits(ids=np.array(["o1", "o2", "o3"]), user=np.array([1, 2, -1], np.int32),
                        items=np.array([[0, 1, 2], [3, 4, -1], [6, 7, 8]], np.int32),
                        slots=("top", "bottom", "shoes")),
        truth={"user_item_score": np.arange(4 * N_ITEMS, dtype=np.float32).reshape(4, N_ITEMS),
               "item_quality": np.arange(N_ITEMS, dtype=np.float32)})


# ---------------------------------------------------------------------------- k-core
def test_k_core_drops_exactly_users_below_threshold_and_reindexes():
    dataset = _dataset()
    filtered = k_core_filter(dataset, min_interactions=5)
    # user b has 5 rows but only 4 distinct items; user d has 2 -> both dropped
    assert filtered.users.ids.tolist() == ["a", "c"]
    assert filtered.users.features["age"].tolist() == [20, 40]
    assert filtered.n_items == N_ITEMS
    assert sorted(set(filtered.interactions.user.tolist())) == [0, 1]
    assert len(filtered.interactions) == 11
    kept_c = filtered.interactions.user == 1
    assert sorted(filtered.interactions.item[kept_c].tolist()) == list(range(6))
    assert filtered.ratings.user.tolist() == [1]           # c's rating, re-indexed
    assert filtered.pair_ratings.user.tolist() == [0, 1]   # a's and c's votes
    assert filtered.outfits.ids.tolist() == ["o2", "o3"]   # b's outfit dropped, no-user kept
    assert filtered.outfits.user.tolist() == [1, -1]
    np.testing.assert_array_equal(filtered.truth["user_item_score"],
                                  dataset.truth["user_item_score"][[0, 2]])
    np.testing.assert_array_equal(filtered.truth["item_quality"], dataset.truth["item_quality"])
    assert filtered.metadata["k_core"] == {"min_interactions": 5, "users_dropped": 2}
    assert dataset.n_users == 4  # input untouched


def test_k_core_matches_direct_count_on_random_data():
    inter = _random_interactions(n_users=60, per_user=(1, 10), seed=3)
    dataset = FashionDataset(name="r", users=Users(ids=np.array([f"u{k}" for k in range(60)])),
                             items=Items(ids=np.array([f"i{k}" for k in range(N_ITEMS)]),
                                         category=np.array(["top"] * N_ITEMS)),
                             interactions=inter)
    counts = np.bincount(inter.user, minlength=60)
    filtered = k_core_filter(dataset)
    assert filtered.users.ids.tolist() == [f"u{k}" for k in np.flatnonzero(counts >= 5)]
    assert np.bincount(filtered.interactions.user).min() >= 5


def test_k_core_errors():
    dataset = _dataset()
    with pytest.raises(DataError, match=r"no user .* has 7 or more distinct interactions"):
        k_core_filter(dataset, min_interactions=7)
    with pytest.raises(DataError, match="has no interactions table"):
        k_core_filter(FashionDataset(name="x", users=dataset.users, items=dataset.items))
    with pytest.raises(ConfigError, match="min_interactions"):
        k_core_filter(dataset, min_interactions=0)


# ---------------------------------------------------------------------------- leave one out
def _pairs(table):
    return set(zip(table.user.tolist(), table.item.tolist()))


@pytest.mark.parametrize("by", ["time", "random"])
def test_leave_one_out_partitions_pairs_and_counts(by):
    inter = _random_interactions()
    split = leave_one_out(inter, 40, N_ITEMS, by=by, seed=1)
    train, validation, test = (_pairs(t) for t in (split.train, split.validation, split.test))
    assert not (train & validation) and not (train & test) and not (validation & test)
    assert len(split.train) + len(split.validation) + len(split.test) == len(inter)
    assert train | validation | test == _pairs(inter)
    # exactly one validation and one test item per user (every user has >= 3 here)
    assert np.bincount(split.test.user, minlength=40).tolist() == [1] * 40
    assert np.bincount(split.validation.user, minlength=40).tolist() == [1] * 40
    # cold mask equals a direct count of training interactions
    direct = np.array([sum(1 for _, i in train if i == item) for item in range(N_ITEMS)])
    np.testing.assert_array_equal(split.train_counts, direct)
    np.testing.assert_array_equal(split.cold_items, direct < 5)
    # matrices agree with the tables
    assert split.train_matrix.shape == (40, N_ITEMS)
    assert set(zip(*split.test_matrix.nonzero())) == test
    assert split.train_matrix.nnz == len(train)
    exclude = split.exclude_matrix("test")
    assert set(zip(*exclude.nonzero())) == train | validation


def test_leave_one_out_by_time_holds_out_latest_then_previous():
    inter = _random_interactions()
    split = leave_one_out(inter, 40, N_ITEMS, by="time")
    for u in range(40):
        times = np.sort(inter.timestamp[inter.user == u])
        assert split.test.timestamp[split.test.user == u].tolist() == [times[-1]]
        assert split.validation.timestamp[split.validation.user == u].tolist() == [times[-2]]
        assert split.train.timestamp[split.train.user == u].max() < times[-2]


def test_leave_one_out_random_is_seeded():
    inter = _random_interactions()
    first = leave_one_out(inter, 40, N_ITEMS, by="random", seed=5)
    again = leave_one_out(inter, 40, N_ITEMS, by="random", seed=5)
    other = leave_one_out(inter, 40, N_ITEMS, by="random", seed=6)
    np.testing.assert_array_equal(first.test.item, again.test.item)
    assert not np.array_equal(first.test.item, other.test.item)
    by_time = leave_one_out(inter, 40, N_ITEMS, by="time")
    assert not np.array_equal(first.test.item, by_time.test.item)


def test_leave_one_out_small_users_and_repeats():
    # user 0: 3 items; user 1: 2 items; user 2: 1 item; user 0 repeats item 0 at the latest time
    inter = _interactions([(0, 0, 1), (0, 1, 2), (0, 2, 3), (0, 0, 9), (1, 3, 1), (1, 4, 2),
                           (2, 5, 1)])
    split = leave_one_out(inter, 3, N_ITEMS, cold_threshold=2)
    # repeat collapsed to its earliest time: user 0's latest distinct item is 2
    assert _pairs(split.test) == {(0, 2), (1, 4)}
    assert _pairs(split.validation) == {(0, 1)}        # user 1 (2 items) gets no validation
    assert _pairs(split.train) == {(0, 0), (1, 3), (2, 5)}  # user 2 (1 item) is train only
    assert split.train_counts.tolist()[:6] == [1, 0, 0, 1, 0, 1]
    assert split.cold_items.all()


def test_leave_one_out_errors():
    inter = _random_interactions()
    with pytest.raises(DataError, match=r"user index \d+ at row \d+ is outside \[0, 10\); "
                                        r"n_users=10 does not match"):
        leave_one_out(inter, 10, N_ITEMS)
    with pytest.raises(DataError, match=r"n_items=5 does not match"):
        leave_one_out(inter, 40, 5)
    with pytest.raises(DataError, match=r"2 of 42 users have no interaction, so no training "
                                        r"interaction \(first: \[40, 41\]\)"):
        leave_one_out(inter, 42, N_ITEMS)
    with pytest.raises(DataError, match="interactions table is empty"):
        leave_one_out(Interactions(user=np.zeros(0, np.int32), item=np.zeros(0, np.int32),
                                   timestamp=np.zeros(0, np.int64)), 1, N_ITEMS)
    with pytest.raises(DataError, match=r"the test split is empty: no user has 2 or more"):
        leave_one_out(_interactions([(0, 0, 0), (1, 0, 0)]), 2, N_ITEMS)
    with pytest.raises(DataError, match=r"the validation split is empty: no user has 3 or more"):
        leave_one_out(_interactions([(0, 0, 0), (0, 1, 1)]), 1, N_ITEMS)
    with pytest.raises(ConfigError, match=r"`by` must be 'time' or 'random'"):
        leave_one_out(inter, 40, N_ITEMS, by="latest")
    split = leave_one_out(inter, 40, N_ITEMS)
    with pytest.raises(ConfigError, match="`split` must be one of"):
        split.exclude_matrix("train_set")


# ---------------------------------------------------------------------------- ratings
def _pair_table(counts, seed=0):
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(len(counts)), counts).astype(np.int32)
    n = len(user)
    return PairRatings(user=user, item_a=rng.integers(N_ITEMS, size=n).astype(np.int32),
                       item_b=rng.integers(N_ITEMS, size=n).astype(np.int32),
                       label=rng.choice([-1, 1], size=n).astype(np.int8))


def test_split_ratings_by_user_partitions_each_user():
    counts = [1, 2, 5, 10, 20, 37]
    table = _pair_table(counts)
    table.item_a[:] = np.arange(len(table))  # row identity
    split = split_ratings_by_user(table, (0.8, 0.1, 0.1), seed=3)
    assert isinstance(split.train, PairRatings)
    rows = [set(part.item_a.tolist()) for part in (split.train, split.validation, split.test)]
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2]) and not (rows[1] & rows[2])
    assert set.union(*rows) == set(range(len(table)))
    for part in (split.train, split.validation, split.test):  # rows keep their columns
        np.testing.assert_array_equal(part.user, table.user[part.item_a])
        np.testing.assert_array_equal(part.label, table.label[part.item_a])
    per_user = [np.bincount(part.user, minlength=6) for part in (split.train, split.validation,
                                                                  split.test)]
    assert per_user[0].min() >= 1                      # every user represented in train
    assert per_user[2].tolist() == [0, 0, 1, 1, 2, 4]  # round(n * 0.1), halves up, keep 1 train
    assert per_user[1].tolist() == [0, 0, 1, 1, 2, 4]
    again = split_ratings_by_user(table, (0.8, 0.1, 0.1), seed=3)
    np.testing.assert_array_equal(again.test.item_a, split.test.item_a)
    other = split_ratings_by_user(table, (0.8, 0.1, 0.1), seed=4)
    assert not np.array_equal(other.test.item_a, split.test.item_a)


def test_split_ratings_by_user_errors():
    with pytest.raises(DataError, match="the PairRatings table is empty"):
        split_ratings_by_user(_pair_table([]))
    with pytest.raises(DataError, match=r"the validation split is empty \(fraction 0.1\); "
                                        r"every user has too few rows"):
        split_ratings_by_user(_pair_table([1, 2, 2]))
    with pytest.raises(ConfigError, match=r"`fractions` must be .* Received: fractions=\(0.5, 0.1"):
        split_ratings_by_user(_pair_table([5]), fractions=(0.5, 0.1, 0.1))
    # a zero fraction may leave its split empty
    split = split_ratings_by_user(_pair_table([5, 5]), fractions=(0.8, 0.0, 0.2))
    assert len(split.validation) == 0 and len(split.test) == 2


# ---------------------------------------------------------------------------- time epochs
def test_time_epochs_equal_width_bins_over_the_span():
    # span 100..139 is 40 seconds: 4 bins of 10 seconds each
    timestamp = np.array([100, 109, 110, 119, 120, 129, 130, 139])
    epochs = time_epochs(timestamp, 4, (100, 139))
    assert epochs.dtype == np.int32
    np.testing.assert_array_equal(epochs, [0, 0, 1, 1, 2, 2, 3, 3])
    # every bin gets the same number of evenly spread timestamps
    spread = time_epochs(np.arange(1000, 1600), 6, (1000, 1599))
    np.testing.assert_array_equal(np.bincount(spread), [100] * 6)
    assert (np.diff(spread) >= 0).all()


def test_time_epochs_first_last_and_outside_the_span():
    first, last = 1_000_000, 1_000_997
    epochs = time_epochs(np.array([first, last]), 5, (first, last))
    np.testing.assert_array_equal(epochs, [0, 4])
    outside = time_epochs(np.array([0, first - 1, last + 1, 2 * last]), 5, (first, last))
    np.testing.assert_array_equal(outside, [0, 0, 4, 4])  # clipped to the nearest end bin
    np.testing.assert_array_equal(time_epochs(np.array([7, 7]), 3, (7, 7)), [0, 0])


def test_time_epochs_one_epoch_and_errors():
    np.testing.assert_array_equal(time_epochs(np.array([-5, 3, 50, 99]), 1, (0, 10)), [0] * 4)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ConfigError, match=rf"`n_epochs` must be an integer >= 1\. "
                                              rf"Received: n_epochs={bad!r}"):
            time_epochs(np.arange(3), bad, (0, 2))
    with pytest.raises(ConfigError, match=r"`span` must be \(first, last\) with first <= last\. "
                                          r"Received: span=\(5, 4\)"):
        time_epochs(np.arange(3), 2, (5, 4))
