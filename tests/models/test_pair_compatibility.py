"""PairCompatibility (the compatibility head's minimal model) and the contrastive pair task: the
loss is the contrastive loss, the model rebuilds from its config, and trained through the
harness on fresh planted worlds it learns the average customer's compatibility (the global
oracle) while the personal oracle stays above it, the gap PSA-Net is for."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.config import from_dict
from tfrec_fashion.models.pair_compatibility import PairCompatibility
from tfrec_fashion.tasks.pairs import ContrastivePairs
from tfrec_fashion.training.harness import train
from tfrec_fashion.training.run_config import RunConfig


def test_the_task_is_the_contrastive_loss_averaged_over_the_batch(assert_close):
    task = ContrastivePairs(margin=1.0)
    distances = tf.constant([0.5, 2.0, 0.25, 0.75])
    labels = tf.constant([1, 1, -1, -1])
    # +1: d^2; -1: max(0, m - d)^2
    expected = np.mean([0.25, 4.0, 0.5625, 0.0625])
    assert_close(task(distances, labels).numpy(), expected, ulps=4)
    # Right side of m / 2: the first (+1, 0.5 is not < 0.5) is wrong, the 2nd wrong, the
    # 3rd (-1 at 0.25) wrong, the 4th right.
    assert task.accuracy.result().numpy() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="margin must be positive"):
        ContrastivePairs(margin=0.0)


def test_the_model_scores_pairs_by_negative_distance_and_rebuilds_from_its_config():
    features = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    model = PairCompatibility(6, 3, embedding_dim=4, hidden_dim=5, item_features=features)
    pairs = {"item_a": tf.constant([0, 1]), "item_b": tf.constant([2, 2])}
    scores = model(pairs).numpy()
    assert (scores < 0).all()
    np.testing.assert_allclose(model.pair_scores(features[[0, 1]], features[[2, 2]]).numpy(),
                               scores, rtol=1e-6)
    twin = PairCompatibility.from_config(model.get_config())
    twin.set_weights(model.get_weights())
    twin.set_item_features(features)
    np.testing.assert_allclose(twin(pairs).numpy(), scores, rtol=1e-6)
    with pytest.raises(ValueError, match=r"item_features must be \[6, 3\]"):
        model.set_item_features(features[:, :2])


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_it_learns_the_average_customers_compatibility_on_fresh_worlds(tmp_path, seed):
    world = {"name": "synthetic", "seed": seed, "n_users": 200, "n_items": 200,
             "n_time_epochs": 1, "mean_interactions_per_user": 12.0, "image_size": 16,
             "pair_ratings_per_user": 40}
    config = from_dict(RunConfig, {
        "model": {"name": "pair_compatibility", "feature_source": "attributes",
                  "embedding_dim": 8},
        "data": world, "seed": seed, "run_dir": str(tmp_path / "run"),
        "train": {"epochs": 10, "batch_size": 128, "learning_rate": 0.01, "verbose": 0}})
    metrics = train(config).metrics
    assert metrics["protocol"] == "pairs"
    # Chance is 0.5; a model that is not personalised can at best reach the global oracle (the
    # average customer's true score). A distance between two item embeddings covers a good part
    # of that way, not all of it (measured 62-85% over seeds 11-13 and 21-27 of this world;
    # AUC 0.69-0.77 against global oracles of 0.80-0.83).
    global_oracle = metrics["global_oracle_test_auc"]
    assert metrics["test_auc"] > 0.65, metrics
    assert metrics["test_auc"] - 0.5 > 0.5 * (global_oracle - 0.5), metrics
    assert metrics["test_auc"] < global_oracle + 0.03, metrics  # no personal signal to find
    # ... while the personal truth is well above the global one: the room PSA-Net is for.
    assert metrics["oracle_test_auc"] > global_oracle + 0.05, metrics
