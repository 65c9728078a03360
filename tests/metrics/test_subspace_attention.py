"""Attention-to-planted-subspace accuracy on hand-built customers: learned subspaces that are the
planted ones relabelled are matched back and score 1, one customer's wrong argmax costs 1/n, an
extra learned subspace stays unmatched, the correlation and the matching equal NumPy's and a
brute force over every assignment, and the shuffled-customer chance level equals its
definition and sits at the level of attention that knows nobody."""

import itertools

import numpy as np
import pytest

from tfrec_fashion.metrics.subspace_attention import (
    attention_subspace_accuracy,
    match_subspaces,
    subspace_correlation,
)

# Six customers' planted weights over three subspaces; dominant: 0, 0, 1, 1, 2, 2.
PLANTED = np.array([[0.7, 0.2, 0.1], [0.6, 0.1, 0.3], [0.2, 0.7, 0.1],
                    [0.1, 0.5, 0.4], [0.2, 0.2, 0.6], [0.3, 0.1, 0.6]])
RELABEL = [2, 0, 1]  # learned subspace k is planted subspace RELABEL[k]


def test_learned_subspaces_that_relabel_the_planted_ones_are_matched_back_and_score_one():
    learned = PLANTED[:, RELABEL]
    found = attention_subspace_accuracy(learned, PLANTED, n_shuffles=50)
    np.testing.assert_array_equal(found["matching"], RELABEL)
    assert found["accuracy"] == 1.0
    assert found["correlation"].shape == (3, 3)


def test_one_customers_wrong_argmax_costs_one_in_six():
    learned = PLANTED[:, RELABEL].copy()
    learned[0] = [0.6, 0.3, 0.1]  # customer 0 (planted 0) now attends to learned 0 = planted 2
    found = attention_subspace_accuracy(learned, PLANTED, n_shuffles=10)
    np.testing.assert_array_equal(found["matching"], RELABEL)
    assert found["accuracy"] == pytest.approx(5 / 6)


def test_an_extra_learned_subspace_is_left_unmatched():
    rng = np.random.default_rng(0)
    learned = np.concatenate([PLANTED[:, RELABEL], np.full((6, 1), 0.05)], axis=1)
    learned[:, 3] += 1e-3 * rng.normal(size=6)  # tiny, uncorrelated, never anyone's argmax
    found = attention_subspace_accuracy(learned, PLANTED, n_shuffles=10)
    np.testing.assert_array_equal(found["matching"], [*RELABEL, -1])
    assert found["accuracy"] == 1.0


def test_correlation_and_matching_equal_numpy_and_a_brute_force_over_assignments():
    rng = np.random.default_rng(3)
    learned, planted = rng.random((30, 4)), rng.random((30, 4))
    expected = np.corrcoef(learned.T, planted.T)[:4, 4:]
    np.testing.assert_allclose(subspace_correlation(learned, planted), expected, atol=1e-12)
    best = max(itertools.permutations(range(4)),
               key=lambda p: sum(expected[k, p[k]] for k in range(4)))
    np.testing.assert_array_equal(match_subspaces(learned, planted), best)
    constant = np.concatenate([learned[:, :3], np.full((30, 1), 0.25)], axis=1)
    assert np.all(subspace_correlation(constant, planted)[3] == 0.0)  # no NaN


def test_chance_is_the_mean_accuracy_over_shuffled_customers():
    rng = np.random.default_rng(7)
    planted = rng.dirichlet(np.ones(3), size=200)
    learned = planted[:, RELABEL] + 0.05 * rng.normal(size=(200, 3))
    found = attention_subspace_accuracy(learned, planted, n_shuffles=20, seed=4)
    shuffles = np.random.default_rng(4)
    accuracies = []
    relative = learned / learned.mean(axis=0)  # step 0
    for _ in range(20):
        shuffled = relative[shuffles.permutation(200)]
        matched = match_subspaces(shuffled, planted)
        accuracies.append(np.mean(matched[shuffled.argmax(1)] == planted.argmax(1)))
    assert found["chance"] == pytest.approx(np.mean(accuracies))
    assert found["chance_std"] == pytest.approx(np.std(accuracies))
    assert found["accuracy"] > 0.85
    # Three balanced subspaces: attention unrelated to the customer is right about 1 in 3.
    assert found["chance"] == pytest.approx(1 / 3, abs=0.06)


def test_relative_weights_see_past_a_subspace_everyone_weighs_more():
    """A model may trade a subspace's mask size for its weight: here everyone's first weight is
    ten times as large (then renormalised), so the raw argmax names it far too often, while
    each customer's weights still follow their planted ones."""
    rng = np.random.default_rng(5)
    planted = rng.dirichlet(np.full(3, 0.3), size=600)
    learned = planted * [10.0, 1.0, 1.0] + 0.02
    learned /= learned.sum(axis=1, keepdims=True)
    raw = attention_subspace_accuracy(learned, planted, n_shuffles=20, relative=False)
    found = attention_subspace_accuracy(learned, planted, n_shuffles=20)
    assert found["accuracy"] > 0.8 and found["accuracy"] > raw["accuracy"] + 0.1, (raw, found)
    with pytest.raises(ValueError, match="must be positive"):
        attention_subspace_accuracy(learned - 1.0, planted)


def test_attention_that_knows_nobody_scores_at_chance():
    rng = np.random.default_rng(11)
    planted = rng.dirichlet(np.ones(3), size=2000)
    learned = rng.dirichlet(np.ones(3), size=2000)
    found = attention_subspace_accuracy(learned, planted, n_shuffles=30)
    assert abs(found["accuracy"] - found["chance"]) < 4 * found["chance_std"] + 0.01


def test_bad_input_is_refused_naming_what_was_received():
    with pytest.raises(ValueError, match="same number of customers.*Received: 6 and 5"):
        attention_subspace_accuracy(PLANTED, PLANTED[:5])
    with pytest.raises(ValueError, match="n_shuffles"):
        attention_subspace_accuracy(PLANTED, PLANTED, n_shuffles=0)
