"""Per-user AUC (VBPR / DVBPR eq. 3) against an explicit double loop over pairs and sklearn."""

import math

import numpy as np
import pytest
import scipy.sparse
from sklearn.metrics import roc_auc_score

from tfrec_fashion.metrics import (
    cold_items,
    per_user_auc,
    per_user_auc_from_embeddings,
    per_user_auc_values,
    per_user_auc_values_from_embeddings,
)


def reference_auc_values(scores, positives, exclude, item_mask):
    """Eq. 3 literally: for each user, every (test positive i, unobserved j) pair, ties 1/2."""
    n_users, n_items = scores.shape
    values = []
    for u in range(n_users):
        allowed = [i for i in range(n_items) if item_mask[i] and not exclude[u, i]]
        pos = [i for i in allowed if positives[u, i]]
        neg = [j for j in allowed if not positives[u, j]]
        if not pos or not neg:
            values.append(math.nan)
            continue
        total = 0.0
        for i in pos:
            for j in neg:
                total += 1.0 if scores[u, i] > scores[u, j] else 0.5 if scores[u, i] == scores[u, j] else 0.0
        values.append(total / (len(pos) * len(neg)))
    return np.array(values)


def random_case(seed, n_users=12, n_items=30):
    """Integer scores with many ties, and the awkward users planted in the first rows."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, size=(n_users, n_items)).astype(float)
    positives = rng.random((n_users, n_items)) < 0.15
    exclude = rng.random((n_users, n_items)) < 0.2  # overlaps some positives: exclude wins
    positives[0] = False
    positives[0, 3] = True  # exactly one positive
    exclude[0, 3] = False
    positives[1] = False  # no positive
    positives[2] = True  # no negative
    exclude[3] = True  # every item excluded
    item_mask = rng.random(n_items) < 0.5
    item_mask[3] = True  # keeps user 0's single positive in the cold variant too
    return scores, positives, exclude, item_mask


def test_hand_computed_example():
    scores = np.array([[0.9, 0.1, 0.5, 0.5], [0.2, 0.4, 0.6, 0.8]])
    positives = np.array([[1, 0, 1, 0], [1, 0, 0, 0]])
    exclude = np.array([[0, 0, 0, 0], [0, 0, 0, 1]])
    # User 0: pairs (0,1) (0,3) (2,1) win, (2,3) tie -> 3.5 / 4. User 1: item 0 loses to 1 and 2.
    np.testing.assert_allclose(per_user_auc_values(scores, positives, exclude), [0.875, 0.0])
    assert per_user_auc(scores, positives, exclude) == pytest.approx(0.4375)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("use_mask", [False, True])
def test_matches_double_loop_over_pairs(seed, use_mask):
    scores, positives, exclude, item_mask = random_case(seed)
    mask = item_mask if use_mask else np.ones(scores.shape[1], dtype=bool)
    expected = reference_auc_values(scores, positives, exclude, mask)
    got = per_user_auc_values(scores, positives, exclude, item_mask if use_mask else None)
    np.testing.assert_allclose(got, expected, equal_nan=True)
    assert np.isnan(got[[1, 2, 3]]).all()  # no positive, no negative, all excluded
    assert not np.isnan(got[0])  # exactly one positive is fine
    assert per_user_auc(scores, positives, exclude, item_mask if use_mask else None) == (
        pytest.approx(np.nanmean(expected))
    )


@pytest.mark.parametrize("use_mask", [False, True])
def test_one_positive_rows_match_double_loop(use_mask):
    # Leave-one-out rows (one positive each, the implicit protocol's) take the sort-free path;
    # mixed in with rows of several positives, which keep the rank path. Ties count 1/2 in both.
    rng = np.random.default_rng(3)
    n_users, n_items = 40, 25
    scores = rng.integers(0, 4, size=(n_users, n_items)).astype(float)
    positives = np.zeros((n_users, n_items), dtype=bool)
    positives[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    positives[:5] |= rng.random((5, n_items)) < 0.3  # a few rows with several positives
    exclude = rng.random((n_users, n_items)) < 0.2  # may exclude a row's only positive
    item_mask = rng.random(n_items) < 0.6
    mask = item_mask if use_mask else np.ones(n_items, dtype=bool)
    expected = reference_auc_values(scores, positives, exclude, mask)
    got = per_user_auc_values(scores, positives, exclude, item_mask if use_mask else None)
    np.testing.assert_allclose(got, expected, equal_nan=True)
    assert np.isfinite(got).sum() > n_users // 2


def test_matches_sklearn_roc_auc_per_user():
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 3, size=(20, 50)).astype(float)
    positives = rng.random((20, 50)) < 0.3
    positives[:, 0], positives[:, 1] = True, False  # every user has both classes
    got = per_user_auc_values(scores, positives)
    expected = [roc_auc_score(positives[u], scores[u]) for u in range(20)]
    np.testing.assert_allclose(got, expected)


def test_sparse_and_dense_indicators_agree():
    scores, positives, exclude, item_mask = random_case(3)
    dense = per_user_auc_values(scores, positives.astype(int), exclude, item_mask)
    sparse = per_user_auc_values(
        scores, scipy.sparse.csr_matrix(positives), scipy.sparse.csr_array(exclude), item_mask
    )
    np.testing.assert_array_equal(dense, sparse)


def test_cold_items_restrict_both_positives_and_negatives():
    train_counts = np.array([0, 10, 4, 5, 1])
    np.testing.assert_array_equal(cold_items(train_counts), [True, False, True, False, True])
    scores = np.array([[5.0, 9.0, 1.0, 0.0, 3.0]])
    positives = np.array([[1, 1, 0, 0, 0]])
    # Cold items 0, 2, 4: positive 0 (5.0) beats negatives 2 (1.0) and 4 (3.0); warm item 1 ignored.
    assert per_user_auc(scores, positives, item_mask=cold_items(train_counts)) == 1.0
    assert per_user_auc(scores, positives) == 1.0
    assert per_user_auc(-scores, positives, item_mask=cold_items(train_counts)) == 0.0


@pytest.mark.parametrize("batch_size", [1, 5, 1024])
def test_chunked_embeddings_equal_dense_scores(batch_size):
    rng = np.random.default_rng(11)
    # Small integer vectors: the dot products are exact and full of ties.
    users = rng.integers(-2, 3, size=(17, 4)).astype(float)
    items = rng.integers(-2, 3, size=(40, 4)).astype(float)
    positives = scipy.sparse.random(17, 40, density=0.1, random_state=1, format="csr")
    exclude = rng.random((17, 40)) < 0.2
    mask = rng.random(40) < 0.6
    dense = per_user_auc_values(users @ items.T, positives, exclude, mask)
    chunked = per_user_auc_values_from_embeddings(users, items, positives, exclude, mask, batch_size)
    np.testing.assert_array_equal(chunked, dense)
    assert per_user_auc_from_embeddings(users, items, positives, exclude, mask, batch_size) == (
        pytest.approx(per_user_auc(users @ items.T, positives, exclude, mask))
    )


def test_no_defined_user_gives_nan_and_warning():
    scores = np.zeros((2, 3))
    with pytest.warns(RuntimeWarning, match="no user has both a test positive"):
        assert math.isnan(per_user_auc(scores, np.zeros((2, 3), dtype=bool)))
    with pytest.warns(RuntimeWarning, match="per-user AUC is undefined"):
        assert math.isnan(per_user_auc(scores, np.ones((2, 3)), exclude=np.ones((2, 3))))


def test_large_case_runs_vectorised():
    rng = np.random.default_rng(0)
    n_users, n_items = 2_000, 5_000
    scores = rng.standard_normal((n_users, n_items)).astype(np.float32)
    positives = scipy.sparse.random(n_users, n_items, density=0.001, random_state=0, format="csr")
    exclude = scipy.sparse.random(n_users, n_items, density=0.01, random_state=1, format="csr")
    values = per_user_auc_values(scores, positives, exclude, item_mask=rng.random(n_items) < 0.9)
    assert values.shape == (n_users,)
    assert 0.45 < np.nanmean(values) < 0.55  # random scores: chance level


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scores": np.zeros(3)}, r"`scores` must be 2-D"),
        ({"positives": np.zeros((2, 4))}, r"`positives` must have shape .*Received: positives.shape=\(2, 4\)"),
        ({"exclude": np.zeros((3, 3))}, r"`exclude` must have shape"),
        ({"item_mask": np.ones(3)}, r"`item_mask` must be a bool array .*dtype=float64"),
        ({"item_mask": np.ones(4, dtype=bool)}, r"`item_mask` must be a bool array .*shape=\(4,\)"),
        ({"scores": np.full((2, 3), np.nan)}, r"`scores` must not contain NaN"),
    ],
)
def test_bad_input_names_the_argument(kwargs, message):
    arguments = {"scores": np.zeros((2, 3)), "positives": np.eye(2, 3), **kwargs}
    with pytest.raises(ValueError, match=message):
        per_user_auc_values(**arguments)


def test_bad_embedding_input():
    with pytest.raises(ValueError, match="same dim"):
        per_user_auc_from_embeddings(np.zeros((2, 3)), np.zeros((4, 2)), np.eye(2, 4))
    with pytest.raises(ValueError, match=r"`batch_size` must be positive. Received: batch_size=0"):
        per_user_auc_from_embeddings(np.zeros((2, 3)), np.zeros((4, 3)), np.eye(2, 4), batch_size=0)
    with pytest.raises(ValueError, match=r"`threshold` must be positive"):
        cold_items(np.arange(3), threshold=0)
