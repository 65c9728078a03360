"""Non-learned baselines as inner products: RAND at chance, PopRank by count, VisRank equal to the
mean squared distance to the user's items up to a per-user constant (NumPy brute force)."""

import numpy as np
import pytest
import scipy.sparse

from tfrec_fashion.evaluation.baselines import (
    BASELINES,
    baseline_vectors,
    popularity_baseline,
    random_baseline,
    visrank_baseline,
)
from tfrec_fashion.metrics import per_user_auc_from_embeddings, per_user_auc_values


def random_world(seed, n_users=40, n_items=25, n_features=6):
    """Train interactions (every user >= 1 item), one test item each outside train, features."""
    rng = np.random.default_rng(seed)
    train = rng.random((n_users, n_items)) < 0.2
    train[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    test = np.zeros_like(train)
    for u in range(n_users):
        test[u, rng.choice(np.flatnonzero(~train[u]))] = True
    return train, test, rng.normal(size=(n_items, n_features))


def test_rand_is_at_chance_over_many_users():
    rng = np.random.default_rng(1)
    n_users, n_items = 3000, 60
    positives = rng.random((n_users, n_items)) < 0.1
    users, items = random_baseline(n_users, n_items, seed=7)
    assert users.shape == (n_users, 1) and items.shape == (n_items, 1)
    assert users.dtype == items.dtype == np.float64
    assert per_user_auc_from_embeddings(users, items, positives) == pytest.approx(0.5, abs=0.02)


def test_rand_is_seeded():
    first, second = random_baseline(3, 10, seed=3)[1], random_baseline(3, 10, seed=3)[1]
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, random_baseline(3, 10, seed=4)[1])


def test_poprank_scores_are_training_counts():
    train = scipy.sparse.csr_matrix(np.array([
        [1, 0, 1, 0],
        [1, 0, 0, 0],
        [1, 2, 0, 0],  # a repeated interaction counts once, as in ImplicitSplit.train_counts
    ], dtype=np.float32))
    users, items = popularity_baseline(train)
    np.testing.assert_array_equal(users, np.ones((3, 1)))
    np.testing.assert_array_equal(items[:, 0], [3.0, 1.0, 1.0, 0.0])
    # Test items 0 (most popular) and 3 (never seen) against every unobserved item.
    test = np.array([[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1]])
    assert per_user_auc_from_embeddings(users, items, test, exclude=train) == 0.0
    test_popular = np.zeros((3, 4))
    test_popular[1, 2] = 1  # user 1: item 2 (count 1) vs items 1 (count 1, tie) and 3 (count 0)
    assert per_user_auc_from_embeddings(users, items, test_popular, exclude=train) == 0.75


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_visrank_equals_mean_squared_distance_up_to_a_user_constant(seed):
    train, test, features = random_world(seed)
    users, items = visrank_baseline(scipy.sparse.csr_array(train.astype(np.float32)), features)
    scores = users @ items.T
    squared = ((features[:, None, :] - features[None, :, :]) ** 2).sum(-1)  # [items, items]
    brute = np.stack([-squared[:, train[u]].mean(axis=1) for u in range(len(train))])
    shift = scores - brute
    np.testing.assert_allclose(shift, shift[:, :1] * np.ones_like(shift), atol=1e-9)
    # Same order of every pair of items for every user; exact ties of the brute force (a user
    # with two items is equally far from both) may break either way in floating point.
    brute_order = np.sign(brute[:, :, None] - brute[:, None, :])
    order = np.sign(scores[:, :, None] - scores[:, None, :])
    clear = np.abs(brute[:, :, None] - brute[:, None, :]) > 1e-9
    np.testing.assert_array_equal(order[clear], brute_order[clear])
    np.testing.assert_allclose(
        per_user_auc_values(scores, test, exclude=train),
        per_user_auc_values(brute, test, exclude=train),
    )


def test_visrank_user_without_items_ranks_by_distance_to_origin():
    features = np.array([[3.0, 0.0], [1.0, 1.0], [0.0, 0.5]])
    users, items = visrank_baseline(np.array([[0, 0, 0], [1, 0, 0]]), features)
    np.testing.assert_allclose(users[0] @ items.T, -(features**2).sum(axis=1))
    np.testing.assert_allclose(users[1], [6.0, 0.0, -1.0])


def test_baseline_vectors_dispatches_by_name():
    train, _, features = random_world(0)
    assert BASELINES == ("RAND", "PopRank", "VisRank")
    for name, expected in [
        ("RAND", random_baseline(*train.shape, seed=5)),
        ("PopRank", popularity_baseline(train)),
        ("VisRank", visrank_baseline(train, features)),
    ]:
        got = baseline_vectors(name, train_matrix=train, item_features=features, seed=5)
        for array, want in zip(got, expected):
            np.testing.assert_array_equal(array, want)


def test_errors_say_what_was_received():
    train, _, features = random_world(0)
    with pytest.raises(ValueError, match=r"known: RAND, PopRank, VisRank. Received: name='BPR'"):
        baseline_vectors("BPR", train_matrix=train)
    with pytest.raises(ValueError, match="needs `item_features`.*Received: item_features=None"):
        baseline_vectors("VisRank", train_matrix=train)
    with pytest.raises(ValueError, match=r"n_items=25.*Received: item_features.shape=\(24, 6\)"):
        visrank_baseline(train, features[:-1])
    bad = features.copy()
    bad[0, 0], bad[1, 1] = np.nan, np.inf
    with pytest.raises(ValueError, match="finite. Received: 2 NaN or infinite"):
        visrank_baseline(train, bad)
    with pytest.raises(ValueError, match=r"2-D.*Received: train_matrix.shape=\(5,\)"):
        popularity_baseline(np.ones(5))
    with pytest.raises(ValueError, match="`train_matrix` must be finite"):
        popularity_baseline(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="`n_items` must be positive. Received: n_items=0"):
        random_baseline(3, 0)
    with pytest.raises(ValueError, match="Received: seed=-1"):
        random_baseline(3, 4, seed=-1)
