"""Training-example samplers of the papers, vectorised in NumPy and deterministic given a seed.

- :class:`BprTripletSampler`: (u, i, j) with i in I_u+ and j uniform over I \\ I_u+ (DVBPR
  section III-B, "sample a user u, a positive item i, and a negative item j").
- :func:`pair_rating_arrays`: PSA-Net's (customer, item A, item B, +-1 vote) as plain arrays.
- :class:`OutfitRankingSampler`: (user, positive outfit, negative outfit) for PAN / FHN, with PAN's
  user-aware online hard negative mining (hard : random = 0.5).
- :func:`ctl_triplets`: complete-the-look (anchor, positive, negative) item triplets (paper 004).

Every ``sample`` takes an optional ``numpy.random.Generator``; without one the sampler's own
seeded generator advances. Pipelines pass one generator per batch, derived from their seed, so a
batch's draw depends on its key only (see ``pipelines.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import scipy.sparse

from tfrec_fashion.data.dataset import Items, Outfits, PairRatings, Triplets
from tfrec_fashion.errors import ConfigError, DataError

# Rejection sampling redraws only the rejected draws; past this many rounds the stragglers
# (users with almost every item observed) are drawn exactly from their complement.
_REJECTION_ROUNDS = 32

UserScoresFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class BprTripletSampler:
    """Draws BPR triplets (u, i, j): i a training positive of u, j uniform among u's non-positives.

    As in DVBPR's sampler, the user is drawn uniformly among users with at least one positive and
    one non-positive item, then i uniformly among the user's positives; j is drawn uniformly over
    all items and redrawn (vectorised, only the rejected ones) while it is a positive of u.

    Args:
        train_matrix: [n_users, n_items] scipy.sparse or dense; nonzero = training positive
            (``ImplicitSplit.train_matrix``).
        seed: seed of the sampler's own generator (used when ``sample`` gets no ``rng``).
        epochs: optional [n_users, n_items] scipy.sparse or dense int, the time epoch of each
            training positive (TVBPR); read at the positives of ``train_matrix`` only. With it,
            :meth:`sample_with_epochs` also returns the epoch of each triplet's positive, the
            time at which the triplet is scored (its negative is compared at that time too).

    Example:
        >>> sampler = BprTripletSampler(split.train_matrix, seed=0)
        >>> users, positives, negatives = sampler.sample(128)
    """

    def __init__(self, train_matrix: Any, seed: int = 0, epochs: Any = None):
        matrix = scipy.sparse.csr_matrix(train_matrix, dtype=np.float32)
        matrix.eliminate_zeros()
        matrix.sum_duplicates()
        matrix.sort_indices()
        self.train_matrix = matrix
        self.seed = seed
        self.n_users, self.n_items = matrix.shape
        self._indptr = matrix.indptr.astype(np.int64)
        self._indices = matrix.indices.astype(np.int64)
        positives = np.diff(self._indptr)
        self.users = np.flatnonzero((positives > 0) & (positives < self.n_items)).astype(np.int64)
        if len(self.users) == 0:
            raise DataError("BprTripletSampler: no user has both a training positive and a "
                            f"non-positive item (train_matrix shape {matrix.shape}, "
                            f"{matrix.nnz} positives)")
        # Sorted keys u * n_items + i of every positive, for vectorised membership tests.
        self._keys = np.repeat(np.arange(self.n_users, dtype=np.int64), positives) * self.n_items \
            + self._indices
        self._rng = np.random.default_rng(seed)
        self.epochs = None if epochs is None else self._epochs_at_positives(epochs)

    def _epochs_at_positives(self, epochs: Any) -> np.ndarray:
        """int32 [nnz]: the epoch of every positive, in the order of ``self._indices``."""
        if tuple(epochs.shape) != tuple(self.train_matrix.shape):
            raise DataError(f"BprTripletSampler: `epochs` must have the train matrix's shape "
                            f"{self.train_matrix.shape}. Received: shape={tuple(epochs.shape)}")
        rows = np.repeat(np.arange(self.n_users), np.diff(self._indptr))
        if scipy.sparse.issparse(epochs):
            values = np.asarray(scipy.sparse.csr_matrix(epochs)[rows, self._indices]).ravel()
        else:
            values = np.asarray(epochs)[rows, self._indices]
        if len(values) and not np.array_equal(values, np.round(values)):
            raise DataError("BprTripletSampler: epochs must be whole numbers. Received: "
                            f"{values[values != np.round(values)][:3].tolist()}")
        if len(values) and values.min() < 0:
            raise DataError(f"BprTripletSampler: epochs must be >= 0. Received: min="
                            f"{values.min()}")
        return values.astype(np.int32)

    def __len__(self) -> int:
        """Number of training positives (a natural epoch size)."""
        return int(self.train_matrix.nnz)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """bool [n]: whether each (users[k], items[k]) is a training positive."""
        keys = np.asarray(users, np.int64) * self.n_items + np.asarray(items, np.int64)
        where = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return self._keys[where] == keys

    def sample(self, n: int, rng: np.random.Generator | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns (users, positive items, negative items), each int32 [n]."""
        return self._sample(n, rng)[:3]

    def sample_with_epochs(self, n: int, rng: np.random.Generator | None = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Returns (users, positives, negatives, epochs of the positives), each int32 [n]; the
        same draw as :meth:`sample` with the same generator state."""
        if self.epochs is None:
            raise ConfigError("BprTripletSampler: sample_with_epochs needs `epochs` at "
                              "construction (the time epoch of every training positive)")
        return self._sample(n, rng)

    def _sample(self, n: int, rng: np.random.Generator | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        rng = self._rng if rng is None else rng
        users = self.users[rng.integers(len(self.users), size=n)]
        start, count = self._indptr[users], np.diff(self._indptr)[users]
        where = start + (rng.random(n) * count).astype(np.int64)
        positives = self._indices[where]
        negatives = rng.integers(self.n_items, size=n)
        rejected = np.flatnonzero(self.is_positive(users, negatives))
        for _ in range(_REJECTION_ROUNDS):
            if len(rejected) == 0:
                break
            negatives[rejected] = rng.integers(self.n_items, size=len(rejected))
            rejected = rejected[self.is_positive(users[rejected], negatives[rejected])]
        for k in rejected:  # rare: dense users; draw exactly from the complement
            row = self._indices[self._indptr[users[k]]:self._indptr[users[k] + 1]]
            negatives[k] = rng.choice(np.setdiff1d(np.arange(self.n_items), row))
        epochs = None if self.epochs is None else self.epochs[where]
        return (users.astype(np.int32), positives.astype(np.int32), negatives.astype(np.int32),
                epochs)


def pair_rating_arrays(pair_ratings: PairRatings) -> dict[str, np.ndarray]:
    """PSA-Net's pair votes as arrays: int32 "user", "item_a", "item_b", float32 "label" (+1 / -1).

    Raises:
        DataError: the table is empty or a label is not +1 / -1.
    """
    if len(pair_ratings) == 0:
        raise DataError("pair_rating_arrays: the pair_ratings table is empty")
    label = np.asarray(pair_ratings.label)
    bad = ~np.isin(label, (-1, 1))
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"pair_rating_arrays: row {row} has label {label[row].item()!r}; "
                        "labels must be +1 or -1")
    return {"user": np.asarray(pair_ratings.user, np.int32),
            "item_a": np.asarray(pair_ratings.item_a, np.int32),
            "item_b": np.asarray(pair_ratings.item_b, np.int32),
            "label": label.astype(np.float32)}


def items_by_category(items: Items) -> dict[str, np.ndarray]:
    """Maps each category name to the int32 indices of its items."""
    return {str(c): np.flatnonzero(items.category == c).astype(np.int32)
            for c in np.unique(items.category)}


class OutfitRankingSampler:
    """Draws (user, positive outfit, negative outfit) with PAN's user-aware hard negative mining.

    A positive is a user's outfit; its negative replaces ``slots_replaced`` of its filled slots,
    chosen at random, by other items of the same category. With a ``user_scores_fn`` (the current
    model's preference score), ``hard_fraction`` of the negatives are *hard*: the highest-scoring
    of ``pool_size`` such candidates for that user, i.e. the negative with the largest BPR loss;
    the rest are one random candidate (PAN section 2, "online user-aware hard negative mining",
    hard : random = 0.5). PAN ranks candidate outfits by the distance between user embeddings; a
    scorer built from those distances plugs in the same way. Without a scorer every negative is
    random (the "no HN" rows of PAN Table 2), and ``sample`` reports ``is_hard`` all False.

    Args:
        outfits: the outfits table; rows whose ``user`` is -1 are not used as positives.
        items_by_category: category -> item indices (see :func:`items_by_category`); the category
            of an item to replace is looked up here.
        user_scores_fn: ``(users int32 [m], candidates int32 [m, pool_size, n_slots]) -> float
            [m, pool_size]``, higher = the user likes the candidate more. May be set later
            (``sampler.user_scores_fn = ...``) once the model exists.
        hard_fraction: fraction of hard negatives in each draw, in [0, 1].
        pool_size: candidates scored per hard negative.
        slots_replaced: filled slots replaced in each negative (at most the outfit's filled ones).
        seed: seed of the sampler's own generator.
    """

    def __init__(self, outfits: Outfits, items_by_category: Mapping[str, np.ndarray],
                 user_scores_fn: UserScoresFn | None = None, hard_fraction: float = 0.5,
                 pool_size: int = 8, slots_replaced: int = 1, seed: int = 0):
        if not 0.0 <= hard_fraction <= 1.0:
            raise ConfigError(f"`hard_fraction` must be in [0, 1]. Received: "
                              f"hard_fraction={hard_fraction}")
        for name, value in (("pool_size", pool_size), ("slots_replaced", slots_replaced)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"`{name}` must be a positive integer. "
                                  f"Received: {name}={value!r}")
        self.user_scores_fn = user_scores_fn
        self.hard_fraction = float(hard_fraction)
        self.pool_size = int(pool_size)
        self.slots_replaced = int(slots_replaced)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

        has_user = np.asarray(outfits.user) >= 0
        self.positives = np.flatnonzero(has_user & (np.asarray(outfits.items) >= 0).any(axis=1))
        if len(self.positives) == 0:
            raise DataError("OutfitRankingSampler: no outfit has both a user and an item")
        self.outfit_user = np.asarray(outfits.user, np.int32)
        self.outfit_items = np.asarray(outfits.items, np.int32)
        n_items = int(max(self.outfit_items.max(initial=-1),
                          max((int(np.max(v, initial=-1)) for v in items_by_category.values()),
                              default=-1))) + 1
        # category index of every item (-1 = unknown) and the item pool of every category
        self.categories = [str(c) for c in items_by_category]
        self._pools = [np.asarray(items_by_category[c], np.int64) for c in self.categories]
        self._category_of = np.full(n_items, -1, np.int64)
        self._position = np.zeros(n_items, np.int64)  # an item's index within its category pool
        for index, pool in enumerate(self._pools):
            if (self._category_of[pool] >= 0).any() or len(np.unique(pool)) < len(pool):
                raise DataError("OutfitRankingSampler: items_by_category lists an item twice "
                                f"(category {self.categories[index]!r})")
            self._category_of[pool] = index
            self._position[pool] = np.arange(len(pool))
        used = self.outfit_items[self.positives]
        unknown = used[(used >= 0) & (self._category_of[np.maximum(used, 0)] < 0)]
        if len(unknown):
            raise DataError(f"OutfitRankingSampler: item {int(unknown[0])} of an outfit is in no "
                            "category of items_by_category")
        lonely = [self.categories[c] for c in np.unique(self._category_of[used[used >= 0]])
                  if len(self._pools[c]) < 2]
        if lonely:
            raise DataError(f"OutfitRankingSampler: category {lonely[0]!r} has a single item, so "
                            "an outfit's item of that category cannot be replaced")
        self._pool_offsets = np.cumsum([0] + [len(p) for p in self._pools])
        self._pool_items = np.concatenate(self._pools)

    def __len__(self) -> int:
        """Number of positive outfits (a natural epoch size)."""
        return len(self.positives)

    @property
    def n_slots(self) -> int:
        return self.outfit_items.shape[1]

    def corrupt(self, outfits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Negatives of ``outfits`` int32 [..., n_slots]: ``slots_replaced`` filled slots get
        another item of the same category."""
        flat = outfits.reshape(-1, self.n_slots).copy()
        filled = flat >= 0
        # random order of the filled slots; the first `slots_replaced` of them are replaced
        keys = np.where(filled, rng.random(flat.shape), np.inf)
        rank = np.argsort(np.argsort(keys, axis=1), axis=1)
        replace = filled & (rank < self.slots_replaced)
        rows, slots = np.nonzero(replace)
        old = flat[rows, slots].astype(np.int64)
        category = self._category_of[old]
        size = self._pool_offsets[category + 1] - self._pool_offsets[category]
        # uniform over the category's other items: draw among size - 1 and skip the old item
        draw = (rng.random(len(old)) * (size - 1)).astype(np.int64)
        draw += draw >= self._position[old]
        new = self._pool_items[self._pool_offsets[category] + draw]
        flat[rows, slots] = new
        return flat.reshape(outfits.shape)

    def sample(self, n: int, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """Returns "user" int32 [n], "positive" / "negative" int32 [n, n_slots] and "is_hard"
        bool [n] (whether the negative was mined)."""
        rng = self._rng if rng is None else rng
        chosen = self.positives[rng.integers(len(self.positives), size=n)]
        users, positive = self.outfit_user[chosen], self.outfit_items[chosen]
        negative = self.corrupt(positive, rng)
        is_hard = np.zeros(n, bool)
        if self.user_scores_fn is not None and self.hard_fraction > 0:
            is_hard[rng.permutation(n)[:round(self.hard_fraction * n)]] = True
            hard = np.flatnonzero(is_hard)
            candidates = self.corrupt(
                np.repeat(positive[hard][:, None, :], self.pool_size, axis=1), rng)
            scores = np.asarray(self.user_scores_fn(users[hard], candidates), np.float64)
            if scores.shape != (len(hard), self.pool_size):
                raise DataError(f"OutfitRankingSampler: user_scores_fn returned shape "
                                f"{scores.shape}, expected {(len(hard), self.pool_size)}")
            negative[hard] = candidates[np.arange(len(hard)), np.argmax(scores, axis=1)]
        return {"user": users, "positive": positive, "negative": negative, "is_hard": is_hard}


def ctl_triplets(outfits: Outfits, item_category: np.ndarray, seed: int = 0,
                 triplets_per_outfit: int = 1) -> Triplets:
    """Complete-the-look triplets (paper 004, section 2.2): per outfit, an anchor item, a positive
    of another category from the same outfit, and a negative of the positive's category taken
    from another outfit (and not in the anchor's outfit).

    Outfits with fewer than two categories are skipped. Negatives are drawn uniformly over the
    occurrences of the category in other outfits, so popular items come up as often as they appear.

    Args:
        outfits: the outfits table (its ``user`` column is ignored).
        item_category: str [n_items], ``items.category``.
        seed: seed of every draw.
        triplets_per_outfit: triplets drawn from each usable outfit.

    Raises:
        DataError: no outfit has two categories, or a positive's category has no other item in
            another outfit.
    """
    if not isinstance(triplets_per_outfit, (int, np.integer)) or triplets_per_outfit < 1:
        raise ConfigError("`triplets_per_outfit` must be a positive integer. Received: "
                          f"triplets_per_outfit={triplets_per_outfit!r}")
    rng = np.random.default_rng(seed)
    items = np.asarray(outfits.items, np.int64)
    _, category = np.unique(np.asarray(item_category), return_inverse=True)
    category = category.astype(np.int64)
    slot_category = np.where(items >= 0, category[np.maximum(items, 0)], -1)
    ordered = np.sort(slot_category, axis=1)
    starts_run = np.ones(ordered.shape, bool)
    starts_run[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    n_categories = ((ordered >= 0) & starts_run).sum(axis=1)
    usable = np.repeat(np.flatnonzero(n_categories >= 2), triplets_per_outfit)
    if len(usable) == 0:
        raise DataError("ctl_triplets: no outfit has items of two different categories")
    rows_items, rows_category = items[usable], slot_category[usable]
    anchor_slot = _random_slot(rows_items >= 0, rng)
    anchor_category = rows_category[np.arange(len(usable)), anchor_slot]
    positive_slot = _random_slot((rows_items >= 0) & (rows_category != anchor_category[:, None]),
                                 rng)
    anchor = rows_items[np.arange(len(usable)), anchor_slot]
    positive = rows_items[np.arange(len(usable)), positive_slot]
    positive_category = category[positive]

    # Every (outfit, item) occurrence grouped by category, to draw negatives from.
    occ_outfit, occ_slot = np.nonzero(items >= 0)
    occ_item = items[occ_outfit, occ_slot]
    order = np.argsort(category[occ_item], kind="stable")
    occ_outfit, occ_item = occ_outfit[order], occ_item[order]
    offsets = np.searchsorted(category[occ_item], np.arange(category.max() + 2))
    start = offsets[positive_category]
    size = offsets[positive_category + 1] - start

    def bad(k: np.ndarray, pick: np.ndarray) -> np.ndarray:
        in_anchor_outfit = (items[usable[k]] == occ_item[pick][:, None]).any(axis=1)
        return (occ_outfit[pick] == usable[k]) | in_anchor_outfit

    pick = start + (rng.random(len(usable)) * size).astype(np.int64)
    todo = np.flatnonzero(bad(np.arange(len(usable)), pick))
    for _ in range(_REJECTION_ROUNDS):
        if len(todo) == 0:
            break
        pick[todo] = start[todo] + (rng.random(len(todo)) * size[todo]).astype(np.int64)
        todo = todo[bad(todo, pick[todo])]
    for k in todo:  # rare: few outfits hold this category; draw exactly or fail
        candidates = np.arange(start[k], start[k] + size[k])
        candidates = candidates[~bad(np.full(len(candidates), k), candidates)]
        if len(candidates) == 0:
            name = str(np.unique(np.asarray(item_category))[positive_category[k]])
            raise DataError(f"ctl_triplets: outfit {str(outfits.ids[usable[k]])!r}: no other "
                            f"outfit has a different item of category {name!r}")
        pick[k] = rng.choice(candidates)
    return Triplets(anchor=anchor.astype(np.int32), positive=positive.astype(np.int32),
                    negative=occ_item[pick].astype(np.int32))


def _random_slot(allowed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Index of a uniformly chosen True column of each row of ``allowed`` [n, n_slots]."""
    keys = np.where(allowed, rng.random(allowed.shape), -1.0)
    return np.argmax(keys, axis=1)
