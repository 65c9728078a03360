"""Same-category precision@k and an approximate index's recall@k against Python set references."""

import math

import numpy as np
import pytest

from tfrec_fashion.metrics import precision_at_k, recall_at_k_overlap


def test_precision_hand_computed_example():
    retrieved = np.array([["top", "top", "shoe"], ["bag", "top", "bag"]])
    queries = np.array(["top", "bag"])
    assert precision_at_k(retrieved, queries, k=2) == pytest.approx((2 / 2 + 1 / 2) / 2)
    assert precision_at_k(retrieved, queries, k=3) == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_precision_matches_reference():
    rng = np.random.default_rng(0)
    retrieved, queries = rng.integers(0, 5, size=(100, 20)), rng.integers(0, 5, size=100)
    expected = np.mean([sum(label == q for label in row[:7]) / 7 for row, q in zip(retrieved, queries)])
    assert precision_at_k(retrieved, queries, 7) == pytest.approx(expected)


def test_recall_overlap_hand_computed_example():
    approx = np.array([[1, 2, 3, 9], [4, 5, 6, 7]])
    exact = np.array([[3, 1, 8, 2], [7, 8, 9, 4]])
    # k=3: {1,2,3} & {3,1,8} = 2 of 3; {4,5,6} & {7,8,9} = 0 of 3.
    assert recall_at_k_overlap(approx, exact, k=3) == pytest.approx(1 / 3)


def test_recall_overlap_matches_reference():
    rng = np.random.default_rng(1)
    approx = np.stack([rng.permutation(30)[:10] for _ in range(50)])
    exact = np.stack([rng.permutation(30)[:12] for _ in range(50)])
    expected = np.mean([len(set(a[:8]) & set(e[:8])) / 8 for a, e in zip(approx, exact)])
    assert recall_at_k_overlap(approx, exact, 8) == pytest.approx(expected)


def test_empty_inputs_warn():
    with pytest.warns(RuntimeWarning, match="precision@k is undefined"):
        assert math.isnan(precision_at_k(np.zeros((0, 3)), np.zeros(0), 2))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: precision_at_k(np.zeros((2, 3)), np.zeros(2), 0), r"`k` must be positive. Received: k=0"),
        (lambda: precision_at_k(np.zeros((2, 3)), np.zeros(2), 4), r"`k` must be at most .*\(3\). Received: k=4"),
        (lambda: precision_at_k(np.zeros((2, 3)), np.zeros(3), 1), r"`query_labels` must have shape"),
        (lambda: precision_at_k(np.zeros(3), np.zeros(3), 1), r"`retrieved_labels` must be 2-D"),
        (lambda: recall_at_k_overlap(np.zeros((2, 3)), np.zeros((3, 3)), 1), r"same number of queries"),
        (lambda: recall_at_k_overlap([[1, 1, 2]], [[1, 2, 3]], 2), r"`approx_ids` must not repeat an id"),
        (lambda: recall_at_k_overlap([[1, 2, 3]], [[1, 2]], 3), r"`k` must be at most .*`exact_ids`"),
    ],
)
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
