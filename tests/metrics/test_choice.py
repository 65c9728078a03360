"""FITB and triplet accuracy: ties score as the expected accuracy of a random tie-break."""

import math

import numpy as np
import pytest

from tfrec_fashion.metrics import fitb_accuracy, triplet_accuracy


def reference_fitb(scores, answers):
    values = []
    for row, answer in zip(scores, answers):
        best = max(row)
        tied = [j for j, s in enumerate(row) if s == best]
        values.append(1 / len(tied) if answer in tied else 0.0)
    return sum(values) / len(values)


def test_fitb_hand_computed_example():
    scores = np.array([[0.9, 0.1, 0.3], [0.5, 0.5, 0.2], [0.1, 0.2, 0.3], [0.4, 0.4, 0.4]])
    # Right and alone on top: 1; tied with one other: 1/2; not on top: 0; three-way tie: 1/3.
    assert fitb_accuracy(scores, [0, 1, 0, 2]) == pytest.approx((1 + 0.5 + 0 + 1 / 3) / 4)


@pytest.mark.parametrize("seed", [0, 1])
def test_fitb_matches_reference(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(200, 4)).astype(float)
    answers = rng.integers(0, 4, size=200)
    assert fitb_accuracy(scores, answers) == pytest.approx(reference_fitb(scores, answers))


def test_triplet_hand_computed_example():
    assert triplet_accuracy([0.9, 0.5, 0.2], [0.1, 0.5, 0.3]) == pytest.approx(0.5)


def test_triplet_matches_reference():
    rng = np.random.default_rng(2)
    ap, an = rng.integers(0, 3, size=(2, 300))
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in zip(ap, an)) / 300
    assert triplet_accuracy(ap, an) == pytest.approx(expected)


def test_empty_inputs_warn():
    with pytest.warns(RuntimeWarning, match="FITB accuracy is undefined: there are no questions"):
        assert math.isnan(fitb_accuracy(np.zeros((0, 4)), np.zeros(0, dtype=int)))
    with pytest.warns(RuntimeWarning, match="triplet accuracy is undefined"):
        assert math.isnan(triplet_accuracy([], []))


@pytest.mark.parametrize(
    "answers, message",
    [
        ([0, 3], r"`answer_index` must hold integers in \[0, n_choices=3\).*range \[0, 3\]"),
        ([0.0, 1.0], r"`answer_index` must hold integers .*dtype=float64"),
        ([0], r"`answer_index` must have shape \[n_questions\]=\(2,\). Received: answer_index.shape=\(1,\)"),
    ],
)
def test_fitb_bad_answers(answers, message):
    with pytest.raises(ValueError, match=message):
        fitb_accuracy(np.zeros((2, 3)), answers)


def test_triplet_bad_lengths():
    with pytest.raises(ValueError, match=r"`sim_anchor_positive` and `sim_anchor_negative` must have the same shape"):
        triplet_accuracy([0.1, 0.2], [0.1])
