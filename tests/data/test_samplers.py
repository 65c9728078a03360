"""Samplers: BPR negatives (validity, uniformity, seeds), PAN hard negatives, CTL triplet rules."""

import numpy as np
import pytest
import scipy.sparse
import scipy.stats

from tfrec_fashion.data.dataset import Items, Outfits, PairRatings
from tfrec_fashion.data.samplers import (
    BprTripletSampler, OutfitRankingSampler, ctl_triplets, items_by_category, pair_rating_arrays)
from tfrec_fashion.errors import ConfigError, DataError

N_ITEMS = 20


def _train_matrix():
    rng = np.random.default_rng(0)
    dense = np.zeros((8, N_ITEMS), bool)
    for u in range(5):
        dense[u, rng.choice(N_ITEMS, size=3 + u, replace=False)] = True
    dense[5, :] = True                 # every item: no negative -> never sampled
    dense[6, :N_ITEMS - 1] = True      # one negative only (exercises the exact fallback)
    # user 7 has no positive -> never sampled
    return scipy.sparse.csr_matrix(dense.astype(np.float32)), dense


# ---------------------------------------------------------------------------- BPR
def test_bpr_negatives_never_positive_and_positives_always_positive():
    matrix, dense = _train_matrix()
    users, pos, neg = BprTripletSampler(matrix, seed=1).sample(10_000)
    assert users.dtype == pos.dtype == neg.dtype == np.int32
    assert set(users.tolist()) == {0, 1, 2, 3, 4, 6}
    assert dense[users, pos].all()
    assert not dense[users, neg].any()
    assert (neg[users == 6] == N_ITEMS - 1).all()


def test_bpr_negatives_uniform_over_complement():
    matrix, dense = _train_matrix()
    users, pos, neg = BprTripletSampler(matrix, seed=2).sample(60_000)
    for u in range(5):
        complement = np.flatnonzero(~dense[u])
        counts = np.bincount(neg[users == u], minlength=N_ITEMS)[complement]
        assert scipy.stats.chisquare(counts).pvalue > 1e-4
        positives = np.flatnonzero(dense[u])
        counts = np.bincount(pos[users == u], minlength=N_ITEMS)[positives]
        assert scipy.stats.chisquare(counts).pvalue > 1e-4
    per_user = np.bincount(users, minlength=8)[[0, 1, 2, 3, 4, 6]]
    assert scipy.stats.chisquare(per_user).pvalue > 1e-4  # users drawn uniformly (DVBPR)


def test_bpr_reproducible_from_seed_and_rng():
    matrix, _ = _train_matrix()
    first = BprTripletSampler(matrix, seed=7).sample(500)
    again = BprTripletSampler(matrix, seed=7).sample(500)
    other = BprTripletSampler(matrix, seed=8).sample(500)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[2], other[2])
    sampler = BprTripletSampler(matrix, seed=0)
    with_rng = [sampler.sample(100, np.random.default_rng(3)) for _ in range(2)]
    np.testing.assert_array_equal(with_rng[0][2], with_rng[1][2])  # rng given: state untouched


def test_bpr_accepts_dense_and_rejects_degenerate_matrix():
    _, dense = _train_matrix()
    users, _, neg = BprTripletSampler(dense, seed=0).sample(1000)
    assert not dense[users, neg].any()
    with pytest.raises(DataError, match=r"no user has both a training positive and a non-positive"):
        BprTripletSampler(np.ones((3, 4)))
    with pytest.raises(DataError, match=r"no user has both .* 0 positives"):
        BprTripletSampler(scipy.sparse.csr_matrix((3, 4)))


def test_pair_rating_arrays():
    pairs = PairRatings(user=np.array([0, 1]), item_a=np.array([2, 3]), item_b=np.array([4, 5]),
                        label=np.array([1, -1], np.int8))
    arrays = pair_rating_arrays(pairs)
    assert {k: v.dtype for k, v in arrays.items()} == {
        "user": np.int32, "item_a": np.int32, "item_b": np.int32, "label": np.float32}
    assert arrays["label"].tolist() == [1.0, -1.0]
    bad = PairRatings(user=pairs.user, item_a=pairs.item_a, item_b=pairs.item_b,
                      label=np.array([1, 0], np.int8))
    with pytest.raises(DataError, match=r"row 1 has label 0; labels must be \+1 or -1"):
        pair_rating_arrays(bad)


# ---------------------------------------------------------------------------- outfits
CATEGORIES = np.array(["top"] * 10 + ["bottom"] * 10 + ["shoes"] * 10)


def _outfits():
    rng = np.random.default_rng(0)
    n = 30
    items = np.stack([rng.integers(0, 10, n), rng.integers(10, 20, n), rng.integers(20, 30, n)], 1)
    items[::4, 2] = -1  # some outfits without shoes
    user = rng.integers(0, 5, n)
    user[-1] = -1       # an outfit with no user: never a positive
    return Outfits(ids=np.array([f"o{k}" for k in range(n)]), user=user.astype(np.int32),
                   items=items.astype(np.int32), slots=("top", "bottom", "shoes"))


def _by_category():
    return items_by_category(Items(ids=np.array([f"i{k}" for k in range(30)]), category=CATEGORIES))


def test_outfit_negatives_replace_slots_within_category():
    outfits = _outfits()
    for replaced in (1, 2):
        sampler = OutfitRankingSampler(outfits, _by_category(), slots_replaced=replaced, seed=0)
        batch = sampler.sample(2000)
        positive, negative = batch["positive"], batch["negative"]
        assert positive.shape == negative.shape == (2000, 3)
        assert (batch["user"] >= 0).all() and not batch["is_hard"].any()
        differs = positive != negative
        assert (differs.sum(axis=1) == replaced).all()
        assert (negative[positive < 0] == -1).all()
        assert (CATEGORIES[negative[differs]] == CATEGORIES[positive[differs]]).all()
        # a positive is one of the user's own outfits
        own = {(u, tuple(row)) for u, row in zip(outfits.user, outfits.items.tolist())}
        assert all((u, tuple(row)) in own for u, row in zip(batch["user"], positive.tolist()))
    # replacements are uniform over the category's other items
    sampler = OutfitRankingSampler(outfits, _by_category(), seed=1)
    batch = sampler.sample(20_000)
    replaced_top_3 = (batch["positive"][:, 0] == 3) & (batch["negative"][:, 0] != 3)
    tops = batch["negative"][replaced_top_3, 0]
    assert len(tops) > 300
    counts = np.delete(np.bincount(tops, minlength=10), 3)
    assert scipy.stats.chisquare(counts).pvalue > 1e-4


def test_hard_negative_mining_picks_pool_hardest_for_half():
    pools = []

    def scorer(users, candidates):  # the model "likes" high item indices
        pools.append(candidates.copy())
        assert candidates.shape[1:] == (6, 3) and len(users) == len(candidates)
        return np.where(candidates >= 0, candidates, 0).sum(axis=2).astype(np.float32)

    sampler = OutfitRankingSampler(_outfits(), _by_category(), user_scores_fn=scorer,
                                   hard_fraction=0.5, pool_size=6, seed=0)
    batch = sampler.sample(1000)
    is_hard = batch["is_hard"]
    assert is_hard.sum() == 500
    (pool,) = pools
    score = np.where(batch["negative"] >= 0, batch["negative"], 0).sum(axis=1)
    pool_scores = np.where(pool >= 0, pool, 0).sum(axis=2)
    np.testing.assert_array_equal(score[is_hard], pool_scores.max(axis=1))
    # the random half is a single random candidate: scores like the pool's average, not its max
    positive_score = np.where(batch["positive"] >= 0, batch["positive"], 0).sum(axis=1)
    gain = score - positive_score
    assert gain[is_hard].mean() > gain[~is_hard].mean() + 2.0
    assert abs(gain[~is_hard].mean() - (pool_scores.mean(axis=1)
                                        - positive_score[is_hard]).mean()) < 1.0
    # reproducible from the seed
    pools.clear()
    again = OutfitRankingSampler(_outfits(), _by_category(), user_scores_fn=scorer,
                                 hard_fraction=0.5, pool_size=6, seed=0).sample(1000)
    np.testing.assert_array_equal(again["negative"], batch["negative"])


def test_outfit_sampler_errors():
    outfits, by_category = _outfits(), _by_category()
    with pytest.raises(ConfigError, match=r"`hard_fraction` must be in \[0, 1\]. Received: "
                                          r"hard_fraction=1.5"):
        OutfitRankingSampler(outfits, by_category, hard_fraction=1.5)
    no_users = Outfits(ids=outfits.ids, user=np.full(30, -1, np.int32), items=outfits.items,
                       slots=outfits.slots)
    with pytest.raises(DataError, match="no outfit has both a user and an item"):
        OutfitRankingSampler(no_users, by_category)
    with pytest.raises(DataError, match=r"item \d+ of an outfit is in no category"):
        OutfitRankingSampler(outfits, {k: v for k, v in by_category.items() if k != "top"})
    with pytest.raises(DataError, match=r"category 'shoes' has a single item"):
        OutfitRankingSampler(Outfits(ids=np.array(["o"]), user=np.array([0], np.int32),
                                     items=np.array([[0, 10, 20]], np.int32), slots=outfits.slots),
                             {**by_category, "shoes": np.array([20])})
    sampler = OutfitRankingSampler(outfits, by_category, pool_size=4,
                                   user_scores_fn=lambda users, candidates: np.zeros(len(users)))
    with pytest.raises(DataError, match=r"user_scores_fn returned shape \(5,\), expected \(5, 4\)"):
        sampler.sample(10)


# ---------------------------------------------------------------------------- complete the look
def test_ctl_triplets_obey_category_rules():
    outfits = _outfits()
    triplets = ctl_triplets(outfits, CATEGORIES, seed=0, triplets_per_outfit=20)
    assert len(triplets) == 30 * 20
    assert triplets.anchor.dtype == np.int32
    membership = [set(row[row >= 0].tolist()) for row in outfits.items]
    for a, p, n in zip(triplets.anchor, triplets.positive, triplets.negative):
        same = [k for k, items in enumerate(membership) if a in items and p in items]
        assert same, "anchor and positive come from one outfit"
        assert CATEGORIES[a] != CATEGORIES[p]
        assert CATEGORIES[n] == CATEGORIES[p]
        assert any(n not in membership[k] for k in same)
        assert any(n in items for k, items in enumerate(membership) if k not in same)
    again = ctl_triplets(outfits, CATEGORIES, seed=0, triplets_per_outfit=20)
    np.testing.assert_array_equal(again.negative, triplets.negative)
    # every category pair shows up as (anchor, positive)
    pairs = set(zip(CATEGORIES[triplets.anchor], CATEGORIES[triplets.positive]))
    assert len(pairs) == 6


def test_ctl_triplets_errors():
    single = Outfits(ids=np.array(["a", "b"]), user=np.array([-1, -1], np.int32),
                     items=np.array([[0, -1, -1], [1, -1, -1]], np.int32), slots=("t", "b", "s"))
    with pytest.raises(DataError, match="no outfit has items of two different categories"):
        ctl_triplets(single, CATEGORIES)
    # the only other outfit with bottoms holds the same bottom: no valid negative
    stuck = Outfits(ids=np.array(["a", "b"]), user=np.array([-1, -1], np.int32),
                    items=np.array([[0, 10, -1], [1, 10, -1]], np.int32), slots=("t", "b", "s"))
    with pytest.raises(DataError, match=r"outfit '[ab]': no other outfit has a different item of "
                                        r"category '(top|bottom)'"):
        ctl_triplets(stuck, CATEGORIES, triplets_per_outfit=5)


# ---------------------------------------------------------------------------- BPR time epochs
def _epoch_matrices():
    """The train matrix, a dense [8, N_ITEMS] epoch per (user, item) (nonzero off the positives
    too, which the sampler must ignore) and its sparse form restricted to the positives."""
    matrix, dense = _train_matrix()
    epochs = (np.arange(8)[:, None] * 3 + np.arange(N_ITEMS)[None, :] % 5).astype(np.int64)
    return matrix, dense, epochs, scipy.sparse.csr_matrix(np.where(dense, epochs, 0))


@pytest.mark.parametrize("form", ["dense", "sparse"])
def test_bpr_epochs_are_those_of_the_positive_pair(form):
    matrix, dense, epochs, sparse = _epoch_matrices()
    sampler = BprTripletSampler(matrix, seed=1, epochs=epochs if form == "dense" else sparse)
    users, pos, neg, epoch = sampler.sample_with_epochs(2000)
    assert epoch.dtype == np.int32 and epoch.shape == (2000,)
    assert dense[users, pos].all() and not dense[users, neg].any()
    np.testing.assert_array_equal(epoch, epochs[users, pos])
    # the positive's epoch, not the negative's (they differ for some draws)
    assert not np.array_equal(epoch, epochs[users, neg])


def test_bpr_epochs_positive_with_zero_epoch_in_sparse_matrix():
    # A sparse epochs matrix stores no explicit 0: an absent entry at a positive is epoch 0.
    matrix, dense, epochs, _ = _epoch_matrices()
    sparse = scipy.sparse.csr_matrix(np.where(dense, epochs, 0) * (np.arange(8)[:, None] != 0))
    users, pos, _, epoch = BprTripletSampler(matrix, seed=3, epochs=sparse).sample_with_epochs(500)
    np.testing.assert_array_equal(epoch, np.where(users == 0, 0, epochs[users, pos]))
    assert (epoch[users == 0] == 0).all() and (users == 0).any()


def test_bpr_sample_with_epochs_is_the_same_draw_as_sample():
    matrix, _, epochs, _ = _epoch_matrices()
    sampler = BprTripletSampler(matrix, seed=0, epochs=epochs)
    plain = sampler.sample(300, np.random.default_rng(11))
    timed = sampler.sample_with_epochs(300, np.random.default_rng(11))
    for a, b in zip(plain, timed[:3]):
        np.testing.assert_array_equal(a, b)
    # without an rng both advance the sampler's own generator from the same seed
    own = BprTripletSampler(matrix, seed=5, epochs=epochs).sample_with_epochs(300)
    again = BprTripletSampler(matrix, seed=5).sample(300)
    for a, b in zip(own[:3], again):
        np.testing.assert_array_equal(a, b)


def test_bpr_epochs_errors():
    matrix, dense, epochs, _ = _epoch_matrices()
    with pytest.raises(DataError, match=r"`epochs` must have the train matrix's shape \(8, 20\)\. "
                                        r"Received: shape=\(8, 19\)"):
        BprTripletSampler(matrix, epochs=epochs[:, :-1])
    with pytest.raises(DataError, match=r"shape=\(20, 8\)"):
        BprTripletSampler(matrix, epochs=scipy.sparse.csr_matrix(epochs.T))
    negative = epochs.copy()
    negative[dense] -= 100
    with pytest.raises(DataError, match=r"epochs must be >= 0\. Received: min=-"):
        BprTripletSampler(matrix, epochs=negative)
    off_positives = np.where(dense, epochs, -1)  # negative only where there is no positive
    BprTripletSampler(matrix, epochs=off_positives)
    with pytest.raises(ConfigError, match=r"sample_with_epochs needs `epochs` at construction"):
        BprTripletSampler(matrix).sample_with_epochs(10)
