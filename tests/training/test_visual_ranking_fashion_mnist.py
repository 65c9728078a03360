"""The VBPR family on the Fashion-MNIST world (real pixels, planted users): DVBPR learns from
images, TVBPR follows a drifting trend, I-VBPR's refinement and I-TVBPR's trends read right.

Every model is trained once through the harness (``harness.train``, the shared implicit protocol:
leave-one-out by time, per-user AUC on all items and on cold items) and shared by the tests.
Two worlds, each built so that one effect is measurable:

- ``COLD_START_WORLD``: 10 time epochs of 2 interactions per user, so the last epoch holds
  exactly each user's validation and test items, and 20% of the items are released in it: those
  new items have no training interaction at all (pure cold start), like a shop's new arrivals.
  BPR-MF only ever sees them as negatives; DVBPR scores them from their pixels.
- ``TREND_WORLD``: 4 epochs, no new items, and a strong trend (``trend_strength`` 3): the appeal
  of dark garments (``intensity``, measured on the pixels) rises from -3 standard units in the
  first epoch to 0 in the last, where the held-out items are.

Measured on 2 cores (world seed = run seed; the tests run seed 0):

    seed                              0      1      2
    cold AUC    BPR-MF             0.384  0.367  0.420
                DVBPR              0.668  0.766  0.713     margin asserted: > BPR-MF + 0.15
    all-items   VBPR   (pixel PCA) 0.753  0.747  0.713
    AUC         TVBPR  (same)      0.783  0.789  0.758     margin asserted: > VBPR + 0.015
    I-VBPR top-10 share of "intensity=high" before -> after one phi' = 0.1 click:
                                   0.00->0.87  0.00->0.93  0.00->0.74   asserted: gain > 0.4
    I-TVBPR beta'(t) rise, first -> last epoch, of intensity=high minus intensity=low
                                   1.30   1.50   1.50      asserted: > 0.5 and the largest
                                                           of the four attributes (next: 0.60,
                                                           0.26, 0.33, texture or area)

The whole module takes about two minutes on 2 cores (113 s measured beside another training
process), hence ``slow``.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from tfrec_fashion.config import from_dict
from tfrec_fashion.data.fashion_mnist_world import LEVELS, VISUAL_ATTRIBUTES
from tfrec_fashion.models.interactive import InteractiveRecommender
from tfrec_fashion.training.harness import TrainResult, train
from tfrec_fashion.training.run_config import RunConfig

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

SEED = 0
COLD_START_WORLD = {"name": "fashion_mnist_world", "n_items": 400, "n_users": 500,
                    "image_size": 32, "n_time_epochs": 10, "new_item_fraction": 0.2,
                    "visual_weight": 0.8}
TREND_WORLD = {"name": "fashion_mnist_world", "n_items": 400, "n_users": 500,
               "n_time_epochs": 4, "new_item_fraction": 0.0, "trend_attribute": "intensity",
               "trend_strength": 3.0}
TREND_EPOCHS = TREND_WORLD["n_time_epochs"]
ATTRIBUTES = ["class_name", *VISUAL_ATTRIBUTES]

BPR_TRAIN = {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 256,
             "steps_per_epoch": 100, "epochs": 40, "early_stopping_patience": 5, "verbose": 0}
DVBPR_TRAIN = {"optimizer": "adam", "learning_rate": 0.002, "batch_size": 128,
               "steps_per_epoch": 100, "epochs": 12, "early_stopping_patience": 3, "verbose": 0}
VBPR_MODEL = {"latent_dim": 10, "visual_dim": 10, "l2_latent": 0.05, "l2_visual": 0.1,
              "l2_embedding": 0.01}

# method -> (world, model section, train section)
METHODS = {
    "BPR-MF": (COLD_START_WORLD, {"name": "bpr_mf", "latent_dim": 10, "l2_latent": 0.05},
               BPR_TRAIN),
    "DVBPR": (COLD_START_WORLD, {"name": "dvbpr", "backbone": "small_cnn", "embedding_dim": 32,
                                 "lambda_theta": 0.1}, DVBPR_TRAIN),
    "VBPR": (TREND_WORLD, {"name": "vbpr", **VBPR_MODEL, "feature_source": "dataset"},
             BPR_TRAIN),
    "TVBPR": (TREND_WORLD, {"name": "tvbpr", **VBPR_MODEL, "feature_source": "dataset",
                            "n_time_epochs": TREND_EPOCHS}, BPR_TRAIN),
    "I-VBPR": (TREND_WORLD, {"name": "ivbpr", **VBPR_MODEL, "attributes": ATTRIBUTES},
               BPR_TRAIN),
    "I-TVBPR": (TREND_WORLD, {"name": "ivbpr", **VBPR_MODEL, "attributes": ATTRIBUTES,
                              "n_time_epochs": TREND_EPOCHS}, BPR_TRAIN),
}


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    """Trains each method at most once per module (a missing dataset is not cached)."""

    @functools.cache
    def trained(method: str) -> TrainResult:
        world, model, train_section = METHODS[method]
        config = from_dict(RunConfig, {
            "data": {**world, "seed": SEED}, "model": model, "train": train_section,
            "run_dir": str(tmp_path_factory.mktemp(method.lower())), "seed": SEED})
        result = train(config)
        print(f"\n{method}: " + ", ".join(f"{key}={value:.3f}" for key, value in
                                          result.metrics.items() if key.endswith("auc")))
        return result

    return trained


@pytest.fixture
def trained(trainer, real_data):
    """``trained(method)``: the method's ``TrainResult``; skips without Fashion-MNIST."""
    return lambda method: real_data(trainer, method)


def test_dvbpr_scores_new_items_from_their_pixels_far_above_bpr_mf(trained):
    bpr, dvbpr = trained("BPR-MF").metrics, trained("DVBPR").metrics
    print(f"cold AUC: BPR-MF {bpr['cold_test_auc']:.3f}, DVBPR {dvbpr['cold_test_auc']:.3f}, "
          f"oracle {dvbpr['oracle_cold_test_auc']:.3f}")
    assert dvbpr["cold_test_auc"] > 0.6
    assert dvbpr["cold_test_auc"] > bpr["cold_test_auc"] + 0.15
    # Not a memorising artefact: DVBPR ranks all items better too.
    assert dvbpr["test_auc"] > bpr["test_auc"]


def test_tvbpr_beats_vbpr_when_the_trend_drifts(trained):
    vbpr, tvbpr = trained("VBPR").metrics, trained("TVBPR").metrics
    print(f"all-items AUC: VBPR {vbpr['test_auc']:.3f}, TVBPR {tvbpr['test_auc']:.3f}, "
          f"oracle {tvbpr['oracle_test_auc']:.3f}")
    assert tvbpr["test_auc"] > vbpr["test_auc"] + 0.015


def test_ivbpr_refinement_towards_a_feature_raises_the_items_that_have_it(trained):
    result = trained("I-VBPR")
    recipe = result.recipe
    recommender = InteractiveRecommender(result.model.parameters(), recipe.features,
                                         recipe.feature_names)
    feature = f"{TREND_WORLD['trend_attribute']}=high"  # "darker": the trend's rising level
    k = recommender.feature_index(feature)
    has_feature = recipe.features[:, k] > 0  # standardised one-hot: > 0 where the item has it
    train_matrix = recipe.split.train_matrix.tocsr()
    before, after, rank_before, rank_after = [], [], [], []
    for user in range(0, result.dataset.n_users, 5):
        seen = train_matrix[user].indices
        p_u = recommender.affinity(user)
        refined = recommender.towards_feature(p_u, feature)
        for p, shares, ranks in ((p_u, before, rank_before), (refined, after, rank_after)):
            items, _ = recommender.recommend(p, k=10, exclude=seen)
            shares.append(has_feature[items].mean())
            order = np.argsort(-(recipe.features @ p), kind="stable")
            ranks.append(np.flatnonzero(has_feature[order]).mean())
    before, after = np.array(before), np.array(after)
    print(f"{feature}: top-10 share {before.mean():.2f} -> {after.mean():.2f}, mean rank "
          f"{np.mean(rank_before):.0f} -> {np.mean(rank_after):.0f} of {len(has_feature)}")
    assert (after >= before).all()
    assert after.mean() > before.mean() + 0.4
    assert (np.array(rank_after) < np.array(rank_before)).all()


def test_itvbpr_feature_popularity_shows_the_planted_trend(trained):
    result = trained("I-TVBPR")
    recommender = InteractiveRecommender(result.model.parameters(), result.recipe.features,
                                         result.recipe.feature_names)
    popularity = recommender.feature_popularity()
    names = list(popularity["feature_names"])
    values = popularity["values"]  # [T, F]
    assert values.shape == (TREND_EPOCHS, len(names))

    def rise(attribute: str, level: str) -> float:
        column = values[:, names.index(f"{attribute}={level}")]
        return float(column[-1] - column[0])

    trend = TREND_WORLD["trend_attribute"]
    spread = {a: rise(a, LEVELS[-1]) - rise(a, LEVELS[0]) for a in VISUAL_ATTRIBUTES}
    print(f"{trend} beta'(t): " + ", ".join(
        f"{level} {np.round(values[:, names.index(f'{trend}={level}')], 2)}" for level in LEVELS))
    print("rise of high minus rise of low:", {a: round(s, 2) for a, s in spread.items()})
    assert rise(trend, "high") > 0.2 and rise(trend, "low") < -0.2
    assert spread[trend] > 0.5
    assert spread[trend] == max(spread.values())
