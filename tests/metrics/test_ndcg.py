"""NDCG@k against sklearn.metrics.ndcg_score, tie averaging included."""

import math

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from tfrec_fashion.metrics import ndcg_at_k, ndcg_at_k_values


def test_hand_computed_example():
    # Ranking: irrelevant, relevant, relevant -> DCG = 1/log2(3) + 1/log2(4); ideal 1 + 1/log2(3).
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k([[3.0, 2.0, 1.0]], [[0.0, 1.0, 1.0]], k=3) == pytest.approx(expected)
    # k=1 keeps only the irrelevant first item.
    assert ndcg_at_k([[3.0, 2.0, 1.0]], [[0.0, 1.0, 1.0]], k=1) == 0.0


def test_ties_average_the_gain_over_the_tied_positions():
    # Two tied items, one relevant: mean gain 1/2 over discounts 1 and 1/log2(3); ideal DCG 1.
    got = ndcg_at_k_values([[1.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]], k=2)
    np.testing.assert_allclose(got, 0.5 * (1 + 1 / math.log2(3)))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 10, 50])
def test_matches_sklearn_with_ties(seed, k):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(40, 12)).astype(float)  # many ties
    relevance = rng.integers(0, 3, size=(40, 12)) * (rng.random((40, 12)) < 0.4)
    relevance[0] = 0  # no relevant candidate: sklearn scores it 0
    got = ndcg_at_k_values(scores, relevance, k)
    assert got[0] == 0.0
    expected = [ndcg_score(relevance[[q]], scores[[q]], k=k) for q in range(40)]
    np.testing.assert_allclose(got, expected)
    assert ndcg_at_k(scores, relevance, k) == pytest.approx(ndcg_score(relevance, scores, k=k))


def test_continuous_scores_match_sklearn():
    rng = np.random.default_rng(3)
    scores, relevance = rng.standard_normal((100, 30)), rng.random((100, 30))
    assert ndcg_at_k(scores, relevance, 5) == pytest.approx(ndcg_score(relevance, scores, k=5))


def test_no_queries_warns():
    with pytest.warns(RuntimeWarning, match="NDCG@k is undefined: there are no queries"):
        assert math.isnan(ndcg_at_k(np.zeros((0, 3)), np.zeros((0, 3)), 2))


@pytest.mark.parametrize(
    "scores, relevance, k, message",
    [
        (np.zeros((2, 3)), np.zeros((2, 3)), 0, r"`k` must be positive. Received: k=0"),
        (np.zeros((2, 3)), np.zeros((2, 3)), 1.5, r"`k` must be a positive integer. Received: k=1.5"),
        (np.zeros((2, 3)), np.zeros((2, 4)), 1, r"must have the same shape"),
        (np.zeros(3), np.zeros(3), 1, r"`scores` must be 2-D"),
        (np.zeros((1, 2)), -np.ones((1, 2)), 1, r"`relevance` must be non-negative"),
    ],
)
def test_bad_input_names_the_argument(scores, relevance, k, message):
    with pytest.raises(ValueError, match=message):
        ndcg_at_k(scores, relevance, k)
