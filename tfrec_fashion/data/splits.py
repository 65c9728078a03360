"""Train / validation / test splits as the papers make them.

- :func:`k_core_filter`: drop users with fewer than 5 interactions (I-VBPR section 4.1, DVBPR
  section IV-A), keeping every item.
- :func:`leave_one_out`: per user one held-out item for validation (V_u) and one for test (T_u),
  the rest train (P_u) (I-VBPR section 4.2, DVBPR section IV-B); cold items are those with fewer
  than 5 training interactions (DVBPR Table III).
- :func:`split_ratings_by_user`: a per-user random split of explicit ratings or pair votes
  (PSA-Net), so every customer keeps training data.

Every function is deterministic given its seed and raises :class:`~tfrec_fashion.errors.DataError`
naming the problem (empty split, user without training data, index outside the table).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, TypeVar

import numpy as np
import scipy.sparse

from tfrec_fashion.data.dataset import FashionDataset, Interactions, Outfits, Users
from tfrec_fashion.errors import ConfigError, DataError

Table = TypeVar("Table")
_SPLITS = ("train", "validation", "test")


# ---------------------------------------------------------------------------- k-core
def k_core_filter(dataset: FashionDataset, min_interactions: int = 5) -> FashionDataset:
    """Drops users with fewer than ``min_interactions`` distinct interacted items; keeps all items.

    One pass over users, as the papers do. Because items are never removed, one pass is already a
    fixed point: a kept user's count does not depend on other users, so there is nothing to iterate.

    Users are re-indexed in their original order. Every user-indexed table is remapped: rows of
    ``interactions``, ``ratings``, ``pair_ratings`` and ``outfits`` that belong to a dropped user
    are removed (outfits with no user, -1, are kept); ``users.features`` and every ``truth`` array
    whose name starts with ``"user"`` (e.g. ``user_item_score`` [n_users, n_items]) keep the rows
    of the kept users.

    Args:
        dataset: a dataset with an ``interactions`` table.
        min_interactions: a user is kept when it has at least this many distinct items.

    Returns:
        A new ``FashionDataset`` (the input is not modified); ``metadata["k_core"]`` records the
        threshold and the number of users dropped.

    Raises:
        DataError: no interactions table, or no user is left.
    """
    min_interactions = _check_int(min_interactions, "min_interactions", minimum=1)
    if dataset.interactions is None:
        raise DataError(f"k_core_filter: dataset {dataset.name!r} has no interactions table")
    inter = dataset.interactions
    pairs = np.unique(_pair_keys(inter.user, inter.item, dataset.n_items))
    distinct_items = np.bincount(pairs // dataset.n_items, minlength=dataset.n_users)
    keep = distinct_items >= min_interactions
    if not keep.any():
        raise DataError(
            f"k_core_filter: no user of {dataset.name!r} has {min_interactions} or more distinct "
            f"interactions (most has {int(distinct_items.max(initial=0))}); nothing would be left")
    new_index = np.full(dataset.n_users, -1, np.int64)
    new_index[keep] = np.arange(int(keep.sum()))

    def remap(table: Any) -> Any:
        if table is None:
            return None
        if isinstance(table, Outfits):
            rows = (table.user < 0) | keep[np.maximum(table.user, 0)]
            user = np.where(table.user >= 0, new_index[np.maximum(table.user, 0)], -1)
        else:
            rows = keep[table.user]
            user = new_index[table.user]
        values = {f.name: getattr(table, f.name) for f in dataclasses.fields(table)}
        for name, value in values.items():
            if isinstance(value, np.ndarray) and len(value) == len(rows):
                values[name] = value[rows]
        values["user"] = user[rows].astype(np.int32)
        return type(table)(**values)

    truth = {}
    for name, array in dataset.truth.items():
        if name.startswith("user"):
            if len(array) != dataset.n_users:
                raise DataError(f"k_core_filter: truth[{name!r}] has {len(array)} rows, "
                                f"expected one per user ({dataset.n_users})")
            array = array[keep]
        truth[name] = array
    users = Users(ids=dataset.users.ids[keep],
                  features={k: v[keep] for k, v in dataset.users.features.items()})
    return dataclasses.replace(
        dataset, users=users, interactions=remap(inter), ratings=remap(dataset.ratings),
        pair_ratings=remap(dataset.pair_ratings), outfits=remap(dataset.outfits), truth=truth,
        metadata={**dataset.metadata, "k_core": {
            "min_interactions": min_interactions, "users_dropped": int((~keep).sum())}})


# ---------------------------------------------------------------------------- leave one out
@dataclasses.dataclass
class ImplicitSplit:
    """A leave-one-out split of implicit feedback.

    Attributes:
        train, validation, test: ``Interactions`` (P_u, V_u, T_u of I-VBPR section 4.2).
        n_users, n_items: sizes of the matrices.
        train_counts: int64 [n_items], training interactions per item.
        cold_items: bool [n_items], ``train_counts < cold_threshold`` (DVBPR Table III).
        cold_threshold: the threshold used (paper: 5).
    """

    train: Interactions
    validation: Interactions
    test: Interactions
    n_users: int
    n_items: int
    train_counts: np.ndarray
    cold_items: np.ndarray
    cold_threshold: int = 5

    @functools.cached_property
    def train_matrix(self) -> scipy.sparse.csr_matrix:
        """float32 CSR [n_users, n_items], 1 where (u, i) is a training interaction."""
        return self._matrix(self.train)

    @functools.cached_property
    def validation_matrix(self) -> scipy.sparse.csr_matrix:
        """float32 CSR [n_users, n_items], 1 at each user's validation item."""
        return self._matrix(self.validation)

    @functools.cached_property
    def test_matrix(self) -> scipy.sparse.csr_matrix:
        """float32 CSR [n_users, n_items], 1 at each user's test item."""
        return self._matrix(self.test)

    def exclude_matrix(self, split: str = "test") -> scipy.sparse.csr_matrix:
        """Items to exclude when evaluating ``split``: the union of the two other splits.

        DVBPR eq. 3 counts as negatives only items outside P_u, V_u and T_u, so evaluate with
        ``positives=split.test_matrix, exclude=split.exclude_matrix("test")``.
        """
        if split not in _SPLITS:
            raise ConfigError(f"`split` must be one of {_SPLITS}. Received: split={split!r}")
        others = [getattr(self, f"{name}_matrix") for name in _SPLITS if name != split]
        return (others[0] + others[1]).sign().tocsr()

    def _matrix(self, table: Interactions) -> scipy.sparse.csr_matrix:
        ones = np.ones(len(table), np.float32)
        return scipy.sparse.csr_matrix((ones, (table.user, table.item)),
                                       shape=(self.n_users, self.n_items))


def leave_one_out(interactions: Interactions, n_users: int, n_items: int, by: str = "time",
                  seed: int = 0, cold_threshold: int = 5) -> ImplicitSplit:
    """Holds out, per user, one item for test and the one before it for validation.

    Repeated (user, item) rows are collapsed first, keeping the earliest timestamp, so no pair can
    appear in two splits. Items are then ordered per user by timestamp (``by="time"``; ties keep
    the input row order) or by a seeded random permutation (``by="random"``, as the papers
    sample): the last item is the test item, the one before it the validation item, the rest train.

    Users with fewer than 3 distinct items always keep one training item: a user with 2 gets a
    test item and no validation item, a user with 1 keeps it for training only.

    Args:
        interactions: the implicit feedback (indices into the user and item tables).
        n_users, n_items: table sizes (rows of the returned matrices).
        by: "time" or "random".
        seed: seed of the random order (``by="random"``) only.
        cold_threshold: items with fewer training interactions are ``cold_items`` (paper: 5).

    Raises:
        DataError: no interactions, an index outside ``[0, n_users)`` / ``[0, n_items)`` (an
            ``n_users`` / ``n_items`` mismatch), a user with no interaction at all (so no training
            interaction; drop it with :func:`k_core_filter`), or an empty validation / test split.
    """
    if by not in ("time", "random"):
        raise ConfigError(f"`by` must be 'time' or 'random'. Received: by={by!r}")
    n_users = _check_int(n_users, "n_users", minimum=1)
    n_items = _check_int(n_items, "n_items", minimum=1)
    cold_threshold = _check_int(cold_threshold, "cold_threshold", minimum=1)
    user = np.asarray(interactions.user, np.int64)
    item = np.asarray(interactions.item, np.int64)
    timestamp = np.asarray(interactions.timestamp, np.int64)
    if len(user) == 0:
        raise DataError("leave_one_out: the interactions table is empty")
    _check_indices(user, n_users, "user", "n_users")
    _check_indices(item, n_items, "item", "n_items")
    no_interaction = np.flatnonzero(np.bincount(user, minlength=n_users) == 0)
    if len(no_interaction):
        raise DataError(
            f"leave_one_out: {len(no_interaction)} of {n_users} users have no interaction, so no "
            f"training interaction (first: {no_interaction[:5].tolist()}); drop them with "
            "k_core_filter or pass the right n_users")

    # Collapse repeats: the earliest (timestamp, row) of each (user, item) pair survives.
    order = np.lexsort((np.arange(len(user)), timestamp, item, user))
    first = np.ones(len(order), bool)
    first[1:] = _pair_keys(user[order[1:]], item[order[1:]], n_items) \
        != _pair_keys(user[order[:-1]], item[order[:-1]], n_items)
    rows = order[first]
    # Order each user's rows: by time (row order breaks ties) or by a seeded random key.
    if by == "time":
        sort_key = (rows, timestamp[rows], user[rows])
    else:
        sort_key = (np.random.default_rng(seed).permutation(len(rows)), user[rows])
    rows = rows[np.lexsort(sort_key)]
    row_user = user[rows]
    count = np.bincount(row_user, minlength=n_users)
    # Position from the end within the user's rows: 0 = last (test), 1 = validation.
    end = np.cumsum(count)[row_user]
    from_end = end - 1 - np.arange(len(rows))
    user_count = count[row_user]
    is_test = (from_end == 0) & (user_count >= 2)
    is_validation = (from_end == 1) & (user_count >= 3)
    is_train = ~(is_test | is_validation)

    def take(mask: np.ndarray) -> Interactions:
        chosen = np.sort(rows[mask])  # back in input order
        return Interactions(user=user[chosen].astype(np.int32), item=item[chosen].astype(np.int32),
                            timestamp=timestamp[chosen])

    train, validation, test = take(is_train), take(is_validation), take(is_test)
    for name, table in (("test", test), ("validation", validation)):
        if len(table) == 0:
            needed = 2 if name == "test" else 3
            raise DataError(f"leave_one_out: the {name} split is empty: no user has {needed} or "
                            f"more distinct items (most has {int(count.max())})")
    train_counts = np.bincount(train.item, minlength=n_items).astype(np.int64)
    return ImplicitSplit(train=train, validation=validation, test=test, n_users=n_users,
                         n_items=n_items, train_counts=train_counts,
                         cold_items=train_counts < cold_threshold, cold_threshold=cold_threshold)


def time_epochs(timestamp: np.ndarray, n_epochs: int, span: tuple[int, int]) -> np.ndarray:
    """Fixed, equal-width time epochs (TVBPR's ``Bin(t)``): int32 epoch of every timestamp.

    ``span`` = (first, last) timestamp of the training interactions is cut into ``n_epochs``
    equal bins; a timestamp outside it (a later test interaction) falls into the nearest end
    bin, so "now" is the last epoch. TVBPR (He & McAuley 2016) learns the segmentation; fixed
    bins are the simple, reproducible choice that also matches worlds simulated epoch by epoch.

    Example:
        >>> epochs = time_epochs(split.train.timestamp, 4, (split.train.timestamp.min(),
        ...                                                   split.train.timestamp.max()))
    """
    n_epochs = _check_int(n_epochs, "n_epochs", minimum=1)
    first, last = int(span[0]), int(span[1])
    if last < first:
        raise ConfigError(f"`span` must be (first, last) with first <= last. Received: "
                          f"span={span}")
    width = max(last - first + 1, 1) / n_epochs
    epoch = np.floor((np.asarray(timestamp, np.int64) - first) / width)
    return np.clip(epoch, 0, n_epochs - 1).astype(np.int32)


# ---------------------------------------------------------------------------- ratings
@dataclasses.dataclass
class RatingSplit:
    """A per-user split of a ratings-like table; each part has the input's type (PairRatings...)."""

    train: Any
    validation: Any
    test: Any


def split_ratings_by_user(table: Table, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                          seed: int = 0) -> RatingSplit:
    """Splits each user's rows at random into train / validation / test.

    A user with n rows gets ``round(n * fractions[2])`` test rows and ``round(n * fractions[1])``
    validation rows (halves round up), then as many of those are given back to train as needed to
    keep at least one training row, so every user is represented in train (a user with one row is
    train only). Works for any table of equal-length columns with a ``user`` column:
    ``Ratings``, ``PairRatings``, ``Interactions``.

    Args:
        table: the rows to split.
        fractions: (train, validation, test), non-negative, summing to 1.
        seed: seed of the per-user shuffle.

    Raises:
        ConfigError: fractions malformed.
        DataError: the table is empty, or a split with a positive fraction ends up empty.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6 \
            or fractions[0] <= 0:
        raise ConfigError("`fractions` must be (train, validation, test), non-negative with a "
                          f"positive train part, summing to 1. Received: fractions={fractions}")
    user = np.asarray(table.user, np.int64)
    if len(user) == 0:
        raise DataError(f"split_ratings_by_user: the {type(table).__name__} table is empty")
    if user.min() < 0:
        raise DataError(f"split_ratings_by_user: user index {int(user.min())} at row "
                        f"{int(np.argmin(user))} is negative")
    rows, rank = shuffled_ranks_per_user(user, seed)
    count = np.bincount(user)
    n_test = np.floor(count * fractions[2] + 0.5).astype(np.int64)
    n_validation = np.floor(count * fractions[1] + 0.5).astype(np.int64)
    n_test = np.minimum(n_test, count - 1)
    n_validation = np.minimum(n_validation, count - 1 - n_test)
    # A row's rank among its user's shuffled rows: [0, n_train) train, then test, then validation.
    row_user = user[rows]
    n_train = (count - n_test - n_validation)[row_user]
    part = np.where(rank < n_train, 0, np.where(rank < n_train + n_test[row_user], 2, 1))
    splits = []
    for index, name in enumerate(_SPLITS):
        chosen = np.sort(rows[part == index])
        if len(chosen) == 0 and fractions[index] > 0:
            raise DataError(f"split_ratings_by_user: the {name} split is empty "
                            f"(fraction {fractions[index]}); every user has too few rows "
                            f"(most has {int(count.max())})")
        splits.append(_take_rows(table, chosen))
    return RatingSplit(*splits)


def shuffled_ranks_per_user(user: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each user's rows in one random order fixed by ``seed``, with no loop over users.

    Args:
        user: int [n] non-negative user index of every row.

    Returns:
        (rows, rank): int [n] row indices sorted by user, shuffled within each user, and
        ``rank[k]`` = the position of ``rows[k]`` among its user's rows (0, 1, ...).
    """
    user = np.asarray(user, np.int64)
    rows = np.lexsort((np.random.default_rng(seed).permutation(len(user)), user))
    count = np.bincount(user)
    rank = np.arange(len(rows)) - (np.cumsum(count) - count)[user[rows]]
    return rows, rank


# ---------------------------------------------------------------------------- helpers
def _take_rows(table: Table, rows: np.ndarray) -> Table:
    values = {f.name: getattr(table, f.name) for f in dataclasses.fields(table)}
    return type(table)(**{k: v[rows] if isinstance(v, np.ndarray) else v
                          for k, v in values.items()})


def _pair_keys(user: np.ndarray, item: np.ndarray, n_items: int) -> np.ndarray:
    return np.asarray(user, np.int64) * n_items + np.asarray(item, np.int64)


def _check_indices(index: np.ndarray, size: int, column: str, size_name: str) -> None:
    bad = (index < 0) | (index >= size)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"leave_one_out: {column} index {int(index[row])} at row {row} is outside "
                        f"[0, {size}); {size_name}={size} does not match the interactions")


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < minimum:
        raise ConfigError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)
