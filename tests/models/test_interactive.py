"""I-VBPR: eqs. 5-8 on hand-built VBPR / TVBPR parameters (known values and a NumPy reference of
the predictor), refinement moving the right items up on a random one-hot world, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfrec_fashion.models.interactive import InteractiveRecommender

NAMES = ["colour=red", "colour=blue", "pattern=plain", "pattern=stripes"]
#                      red blue plain stripes
FEATURES = np.array([[1, 0, 1, 0],   # 0 red plain
                     [1, 0, 0, 1],   # 1 red stripes
                     [0, 1, 1, 0],   # 2 blue plain
                     [0, 1, 0, 1],   # 3 blue stripes
                     [1, 0, 1, 0],   # 4 red plain (as 0)
                     [0, 1, 0, 1]],  # 5 blue stripes (as 3)
                    dtype=float)


def vbpr_parameters() -> dict[str, np.ndarray]:
    """U=3, I=6, K=2, K'=2, F=4."""
    return {
        "gamma_user": np.array([[0.0, 0.0], [1.0, -1.0], [0.5, 2.0]]),
        "gamma_item": np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [-1.0, 0.2], [0.3, 0.3],
                                [0.0, -0.4]]),
        "beta_item": np.array([1.0, 0.5, 0.0, 0.5, 1.0, 0.0]),  # sums to 3
        "theta_user": np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]]),
        "E": np.array([[1.0, -1.0, 0.0, 2.0], [0.5, 1.0, 1.0, 0.0]]),
        "beta_visual": np.array([0.0, 0.0, 0.5, 0.0]),
    }


def tvbpr_parameters() -> dict[str, np.ndarray]:
    """The VBPR dict plus T=2 epochs."""
    delta_e = np.zeros((2, 2, 4))
    delta_e[1, 1, 2] = 0.5
    return {**vbpr_parameters(),
            "w": np.array([[1.0, 1.0], [2.0, 0.0]]),
            "b": np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 2.0, 1.0]]),
            "delta_E": delta_e,
            "delta_beta": np.array([[0.0, 0.0, 0.0, 0.0], [0.1, 0.0, 0.0, 0.0]])}


def predictor(params, u, i, t, f):
    """x_ui(t) of the model with item i's features replaced by f (NumPy reference)."""
    e, beta_v = params["E"], params["beta_visual"]
    theta_i = e @ f
    if "w" in params:
        theta_i = theta_i * params["w"][t] + params["delta_E"][t] @ f
        beta_v = beta_v * params["b"][t] + params["delta_beta"][t]
    return (params["beta_item"][i] + params["gamma_user"][u] @ params["gamma_item"][i]
            + params["theta_user"][u] @ theta_i + beta_v @ f)


def reference_affinity(params, u, t, sample):
    """Eq. 5 by loops over R(I) and k, then the sum-of-|.| normalisation."""
    n_features = params["E"].shape[1]
    p = np.array([sum(predictor(params, u, i, t, np.eye(n_features)[k]) for i in sample)
                  for k in range(n_features)])
    return p / np.abs(p).sum()


def percentile(scores, items):
    """Mean percentile rank of ``items`` in ``scores`` (1 = above every other item, ties 1/2)."""
    ranks = [(np.sum(scores < scores[j]) + 0.5 * (np.sum(scores == scores[j]) - 1))
             / (len(scores) - 1) for j in items]
    return float(np.mean(ranks))


def one_hot_world(seed=0, groups=(4, 3, 2), n_users=6, n_items=40, temporal=True):
    """Random parameters over items with one value per attribute group (F = sum(groups))."""
    rng = np.random.default_rng(seed)
    features = np.concatenate([np.eye(g)[rng.integers(0, g, n_items)] for g in groups], axis=1)
    n_features, k, k_visual, n_epochs = features.shape[1], 3, 3, 3
    params = {"gamma_user": rng.normal(size=(n_users, k)),
              "gamma_item": rng.normal(size=(n_items, k)),
              "beta_item": rng.normal(size=n_items),
              "theta_user": rng.normal(size=(n_users, k_visual)),
              "E": rng.normal(size=(k_visual, n_features)),
              "beta_visual": rng.normal(size=n_features)}
    if temporal:
        params.update(w=rng.uniform(0.5, 1.5, (n_epochs, k_visual)),
                      b=rng.uniform(0.5, 1.5, (n_epochs, n_features)),
                      delta_E=0.1 * rng.normal(size=(n_epochs, k_visual, n_features)),
                      delta_beta=0.1 * rng.normal(size=(n_epochs, n_features)))
    names = [f"f{k}" for k in range(n_features)]
    return params, features, names


# --- eq. 5: affinity ---------------------------------------------------------------------------

def test_affinity_known_values_vbpr():
    rec = InteractiveRecommender(vbpr_parameters(), FEATURES, NAMES, sample_size=None)
    # user 0: gamma_u = 0, sum beta_i = 3; theta_0 E + beta' = [1, -1, 0.5, 2]
    # p = 3 + 6 [1, -1, 0.5, 2] = [9, -3, 6, 15], sum |p| = 33
    np.testing.assert_allclose(rec.affinity(0), np.array([9, -3, 6, 15]) / 33)
    np.testing.assert_allclose(np.abs(rec.affinity([0, 1, 2])).sum(axis=1), 1.0)


def test_affinity_known_values_tvbpr_epochs():
    params = tvbpr_parameters()
    rec = InteractiveRecommender(params, FEATURES, NAMES, sample_size=None)
    assert rec.epoch == 1  # default: the last epoch
    # E_1 = diag(2, 0) E + delta_E(1) -> theta_0 E_1 = [2, -2, 0, 4];
    # beta'(1) = [0, 0, 1, 0] + [0.1, 0, 0, 0]; p = 3 + 6 [2.1, -2, 1, 4] = [15.6, -9, 9, 27]
    np.testing.assert_allclose(rec.affinity(0), np.array([15.6, -9, 9, 27]) / 60.6)
    rec0 = InteractiveRecommender(params, FEATURES, NAMES, epoch=0, sample_size=None)
    # epoch 0: w = 1, b = 1, no drift: the VBPR values
    np.testing.assert_allclose(rec0.affinity(0), np.array([9, -3, 6, 15]) / 33)


@pytest.mark.parametrize("temporal", [False, True])
@pytest.mark.parametrize("sample_size", [None, 4])
def test_affinity_matches_numpy_reference_of_eq5(temporal, sample_size):
    params = tvbpr_parameters() if temporal else vbpr_parameters()
    for epoch in [0, 1] if temporal else [None]:
        rec = InteractiveRecommender(params, FEATURES, NAMES, epoch=epoch,
                                     sample_size=sample_size, seed=3)
        expected = [reference_affinity(params, u, epoch, rec.sample_items) for u in range(3)]
        np.testing.assert_allclose(rec.affinity(np.arange(3)), np.stack(expected))
        np.testing.assert_allclose(rec.affinity(2), expected[2])


def test_normalisation_is_the_papers_when_responses_are_positive():
    params = {**vbpr_parameters(), "beta_item": np.full(6, 10.0)}
    rec = InteractiveRecommender(params, FEATURES, NAMES, sample_size=None)
    raw = np.stack([reference_affinity(params, u, None, range(6)) for u in range(3)])
    assert np.all(raw > 0)
    p = rec.affinity([0, 1, 2])
    np.testing.assert_allclose(p, raw / raw.sum(axis=1, keepdims=True))
    zero = {key: np.zeros_like(value) for key, value in vbpr_parameters().items()}
    np.testing.assert_array_equal(
        InteractiveRecommender(zero, FEATURES, NAMES).affinity(0), np.zeros(4))  # N(0) = 0


def test_sample_is_seeded_without_repeats():
    rec = InteractiveRecommender(vbpr_parameters(), FEATURES, NAMES, sample_size=4, seed=7)
    again = InteractiveRecommender(vbpr_parameters(), FEATURES, NAMES, sample_size=4, seed=7)
    assert len(set(rec.sample_items.tolist())) == 4
    np.testing.assert_array_equal(rec.sample_items, again.sample_items)
    big = InteractiveRecommender(vbpr_parameters(), FEATURES, NAMES, sample_size=100)
    np.testing.assert_array_equal(big.sample_items, np.arange(6))


def test_recommend_ranks_items_by_the_visual_part_of_the_predictor():
    """For one-hot features with fixed groups, p_u . f_i ranks items as theta_u . theta_i(t) +
    beta'(t) . f_i does, whatever the sample R(I) (its constant shifts every item alike)."""
    params, features, names = one_hot_world()
    visual_only = {**params, "beta_item": 0 * params["beta_item"],
                   "gamma_item": 0 * params["gamma_item"]}
    for seed in [0, 1]:
        rec = InteractiveRecommender(params, features, names, epoch=1, sample_size=10,
                                     seed=seed)
        for u in range(6):
            items, scores = rec.recommend(rec.affinity(u), k=len(features))
            visual = np.array([predictor(visual_only, u, i, 1, f) for i, f in enumerate(features)])
            # items with equal features tie; both sides order ties by item index
            np.testing.assert_array_equal(items, np.argsort(-visual, kind="stable"))
            np.testing.assert_allclose(scores, features[items] @ rec.affinity(u))


# --- recommend -----------------------------------------------------------------------------------

def test_recommend_top_k_exclude_and_ties():
    rec = InteractiveRecommender(vbpr_parameters(), FEATURES, NAMES)
    p = np.array([0.1, 0.4, -0.2, 0.3])  # scores: [-0.1, 0.4, 0.2, 0.7, -0.1, 0.7]
    items, scores = rec.recommend(p, k=3)
    np.testing.assert_array_equal(items, [3, 5, 1])  # ties in item order
    np.testing.assert_allclose(scores, [0.7, 0.7, 0.4])
    items, _ = rec.recommend(p, k=10, exclude=[3, 1])
    np.testing.assert_array_equal(items, [5, 2, 0, 4])  # fewer than k left


# --- eqs. 6 and 7: refinement --------------------------------------------------------------------

def test_towards_item_and_feature_known_values():
    rec = InteractiveRecommender(vbpr_parameters(), FEATURES, NAMES, phi=0.5, phi_prime=1.0)
    p = np.full(4, 0.25)
    # eq. 6: [0.25, 0.25, 0.25, 0.25] + 0.5 [1, 0, 0, 1] = [0.75, 0.25, 0.25, 0.75], / 2
    np.testing.assert_allclose(rec.towards_item(p, 1), [0.375, 0.125, 0.125, 0.375])
    # phi = 1: [1.25, 0.25, 0.25, 1.25] / 3
    np.testing.assert_allclose(rec.towards_item(p, 1, phi=1.0), np.array([5, 1, 1, 5]) / 12)
    # eq. 7: + 1.0 h(stripes) = [0.25, 0.25, 0.25, 1.25], / 2
    np.testing.assert_allclose(rec.towards_feature(p, "pattern=stripes"),
                               [0.125, 0.125, 0.125, 0.625])
    np.testing.assert_allclose(rec.towards_feature([0.5, -0.5, 0, 0], 1, phi_prime=0.5),
                               [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(rec.towards_feature(np.zeros(4), 2), [0, 0, 1, 0])


def test_towards_feature_moves_items_with_the_feature_up_for_every_user():
    params, features, names = one_hot_world(seed=1)
    rec = InteractiveRecommender(params, features, names, phi_prime=0.1)
    before, after = [], []
    for u in range(rec.n_users):
        p = rec.affinity(u)
        for k, name in enumerate(names):
            having = np.flatnonzero(features[:, k])
            before.append(percentile(features @ p, having))
            after.append(percentile(features @ rec.towards_feature(p, name), having))
            assert after[-1] >= before[-1] - 1e-12, (u, name)
            # enough phi' puts every item with feature k first
            top, _ = rec.recommend(rec.towards_feature(p, k, phi_prime=10.0), k=len(having))
            assert set(top.tolist()) == set(having.tolist()), (u, name)
    assert np.mean(after) > np.mean(before) + 0.05


def test_towards_item_moves_the_item_and_similar_items_up():
    params, features, names = one_hot_world(seed=2)
    rec = InteractiveRecommender(params, features, names, phi=0.1)
    moved = []
    for u in range(rec.n_users):
        p = rec.affinity(u)
        for i in range(rec.n_items):
            refined = rec.towards_item(p, i)
            np.testing.assert_allclose(np.abs(refined).sum(), 1.0)
            same = np.flatnonzero((features == features[i]).all(axis=1))
            sharing = np.flatnonzero(features @ features[i] > 0)
            for group in ([i], same, sharing):
                gain = percentile(features @ refined, group) - percentile(features @ p, group)
                assert gain >= -1e-12, (u, i, group)
            moved.append(percentile(features @ refined, [i]) - percentile(features @ p, [i]))
            top, _ = rec.recommend(rec.towards_item(p, i, phi=10.0), k=len(same))
            assert set(top.tolist()) == set(same.tolist()), (u, i)
    assert np.mean(moved) > 0.05


# --- eq. 8: trends -------------------------------------------------------------------------------

def test_feature_influence_and_popularity_known_values():
    rec = InteractiveRecommender(tvbpr_parameters(), FEATURES, NAMES)
    influence = rec.feature_influence()
    # t=0: w = [1, 1] -> column sums of E; t=1: w = [2, 0] -> 2 E[0]
    np.testing.assert_allclose(influence["values"], [[1.5, 0, 1, 2], [2, -2, 0, 4]])
    assert list(influence["feature_names"]) == NAMES
    np.testing.assert_array_equal(influence["epochs"], [0, 1])
    np.testing.assert_allclose(rec.feature_influence(include_drift=True)["values"],
                               [[1.5, 0, 1, 2], [2, -2, 0.5, 4]])
    # beta'(t) = beta' * b(t) + delta_beta(t)
    np.testing.assert_allclose(rec.feature_popularity()["values"],
                               [[0, 0, 0.5, 0], [0.1, 0, 1, 0]])


def test_trends_without_epochs_are_one_row():
    rec = InteractiveRecommender(vbpr_parameters(), FEATURES, NAMES)
    np.testing.assert_allclose(rec.feature_influence()["values"], [[1.5, 0, 1, 2]])
    np.testing.assert_allclose(rec.feature_popularity()["values"], [[0, 0, 0.5, 0]])
    no_bias = {k: v for k, v in vbpr_parameters().items() if k != "beta_visual"}
    rec = InteractiveRecommender(no_bias, FEATURES, NAMES)
    np.testing.assert_array_equal(rec.feature_popularity()["values"], np.zeros((1, 4)))


# --- errors --------------------------------------------------------------------------------------

def test_bad_parameters_are_named():
    params = vbpr_parameters()
    with pytest.raises(ValueError, match=r"lacks \['E'\]"):
        InteractiveRecommender({k: v for k, v in params.items() if k != "E"}, FEATURES, NAMES)
    with pytest.raises(ValueError, match=r"has \['gamma_user'\] but lacks \['gamma_item'\]"):
        InteractiveRecommender({k: v for k, v in params.items() if k != "gamma_item"},
                               FEATURES, NAMES)
    with pytest.raises(ValueError, match=r"lacks \['b', 'delta_E', 'delta_beta'\]"):
        InteractiveRecommender({**params, "w": np.ones((2, 2))}, FEATURES, NAMES)
    with pytest.raises(ValueError, match=r"`E` has F = 5 .* but F = 4 elsewhere"):
        InteractiveRecommender({**params, "E": np.ones((2, 5))}, FEATURES, NAMES)
    with pytest.raises(ValueError, match=r"`beta_item` has I = 5"):
        InteractiveRecommender({**params, "beta_item": np.ones(5)}, FEATURES, NAMES)
    with pytest.raises(ValueError, match=r"`delta_E` must be 3-D"):
        bad = {**tvbpr_parameters(), "delta_E": np.ones((2, 8))}
        InteractiveRecommender(bad, FEATURES, NAMES)
    with pytest.raises(ValueError, match="non-finite"):
        InteractiveRecommender({**params, "beta_visual": [0, np.nan, 0, 0]}, FEATURES, NAMES)


def test_bad_arguments_are_named():
    params = vbpr_parameters()
    with pytest.raises(ValueError, match=r"`feature_names` must be 4 unique strings"):
        InteractiveRecommender(params, FEATURES, NAMES[:3])
    with pytest.raises(ValueError, match=r"`feature_names` must be 4 unique strings"):
        InteractiveRecommender(params, FEATURES, NAMES[:3] + NAMES[:1])
    with pytest.raises(ValueError, match=r"`phi` must be positive. Received: phi=0"):
        InteractiveRecommender(params, FEATURES, NAMES, phi=0)
    with pytest.raises(ValueError, match=r"`phi_prime` must be positive. Received: phi_prime=-1"):
        InteractiveRecommender(params, FEATURES, NAMES, phi_prime=-1)
    with pytest.raises(ValueError, match=r"`sample_size` must be a positive integer"):
        InteractiveRecommender(params, FEATURES, NAMES, sample_size=0)
    with pytest.raises(ValueError, match=r"`epoch` must be an integer in \[0, 1\)"):
        InteractiveRecommender(params, FEATURES, NAMES, epoch=1)
    with pytest.raises(ValueError, match=r"`epoch` must be an integer in \[0, 2\)"):
        InteractiveRecommender(tvbpr_parameters(), FEATURES, NAMES, epoch=2)


def test_bad_calls_are_named():
    rec = InteractiveRecommender(vbpr_parameters(), FEATURES, NAMES)
    p = rec.affinity(0)
    with pytest.raises(KeyError, match=r"Unknown feature 'colour=rde'.*'colour=red'"):
        rec.towards_feature(p, "colour=rde")
    with pytest.raises(ValueError, match=r"`feature` must be an integer in \[0, 4\)"):
        rec.towards_feature(p, 4)
    with pytest.raises(ValueError, match=r"`phi_prime` must be positive"):
        rec.towards_feature(p, 0, phi_prime=0.0)
    with pytest.raises(ValueError, match=r"`phi` must be positive"):
        rec.towards_item(p, 0, phi=-0.1)
    with pytest.raises(ValueError, match=r"`item` must be an integer in \[0, 6\)"):
        rec.towards_item(p, 6)
    with pytest.raises(ValueError, match=r"`p_u` must be .* shape \(4,\). Received shape \(3,\)"):
        rec.recommend(p[:3])
    with pytest.raises(ValueError, match=r"`k` must be a positive integer. Received: k=0"):
        rec.recommend(p, k=0)
    with pytest.raises(ValueError, match=r"`exclude` must hold integer indices in \[0, 6\)"):
        rec.recommend(p, exclude=[7])
    with pytest.raises(ValueError, match=r"`users` must hold integer indices in \[0, 3\)"):
        rec.affinity([0, 3])


def test_module_is_numpy_only():
    code = ("import sys, tfrec_fashion.models.interactive; "
            "print(any(m.split('.')[0] in ('tensorflow', 'tf_keras') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                            text=True, cwd=Path(__file__).parents[2])
    assert result.stdout.strip() == "False", result.stderr
