"""Rating baselines: exact on tiny cases, and ordered as expected on a planted low-rank world."""

import numpy as np
import pytest

from tfrec_fashion.data.dataset import Ratings
from tfrec_fashion.evaluation.rating_baselines import (biases, global_mean, matrix_factorisation,
                                                       rmse, tuned_baselines)


def _ratings(user, item, value) -> Ratings:
    return Ratings(user=np.asarray(user, np.int32), item=np.asarray(item, np.int32),
                   value=np.asarray(value, np.float32))


def test_global_mean_and_unregularised_biases_on_a_hand_computed_case():
    # Two users, two items, fully observed and additive: r = 3 + b_u + b_i exactly.
    train = _ratings([0, 0, 1, 1], [0, 1, 0, 1], [4.0, 2.0, 5.0, 3.0])
    assert global_mean(train, 2, 2).predict(np.array([1]), np.array([0]))[0] == pytest.approx(3.5)
    fitted = biases(train, 2, 2, l2=0.0, sweeps=50)
    np.testing.assert_allclose(fitted.predict(train.user, train.item), train.value, atol=1e-9)


def test_als_matches_a_per_user_ridge_solve():
    rng = np.random.default_rng(0)
    n_users, n_items = 12, 9
    user, item = np.nonzero(rng.random((n_users, n_items)) < 0.6)
    train = _ratings(user, item, rng.normal(size=user.size))
    model = matrix_factorisation(train, n_users, n_items, rank=3, l2=0.5, sweeps=4)
    # After the last sweep the item factors are the exact ridge solution given the user factors.
    residual = train.value - biases(train, n_users, n_items, 10.0).predict(user, item)
    for j in range(n_items):
        rows = item == j
        P = model.user_factors[user[rows]]
        expected = np.linalg.solve(P.T @ P + 0.5 * rows.sum() * np.eye(3), P.T @ residual[rows])
        np.testing.assert_allclose(model.item_factors[j], expected, rtol=1e-6, atol=1e-9)


def test_on_a_planted_low_rank_world_mf_beats_biases_beats_the_mean():
    rng = np.random.default_rng(1)
    n_users, n_items = 200, 150
    truth = (3.0 + rng.normal(0, 0.4, (n_users, 1)) + rng.normal(0, 0.4, (1, n_items))
             + rng.normal(size=(n_users, 3)) @ rng.normal(size=(3, n_items)) * 0.5)
    user, item = np.nonzero(rng.random((n_users, n_items)) < 0.2)
    value = truth[user, item] + rng.normal(0, 0.3, user.size)
    order = rng.permutation(user.size)
    cut = int(0.8 * user.size)
    train = _ratings(user[order[:cut]], item[order[:cut]], value[order[:cut]])
    held = _ratings(user[order[cut:]], item[order[cut:]], value[order[cut:]])
    fitted = tuned_baselines(train, held, n_users, n_items, rank=3)
    errors = {name: rmse(model.predict(held.user, held.item), held.value)
              for name, (model, _) in fitted.items()}
    # Seed 1: mean 1.10, biases 0.99, ALS 0.44 (the noise floor is 0.3).
    assert errors["biases"] < errors["global_mean"] - 0.05
    assert errors["mf"] < errors["biases"] - 0.3
    assert errors["mf"] < 0.5
    assert set(fitted["biases"][1]) == {"l2", "seconds"}


def test_predictions_are_clipped_to_the_rating_range():
    train = _ratings([0, 1], [0, 1], [5.0, 1.0])
    model = biases(train, 2, 2, l2=0.0, clip=(1.0, 5.0))
    model.item_bias[:] = 10.0
    assert model.predict(np.array([0]), np.array([0]))[0] == 5.0
