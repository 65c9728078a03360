"""The VBPR-family and DVBPR recipes as a user drives them: item features from each source, time
epochs reaching the model, and a finished run re-evaluated from its directory (the feature and
image tables are data, rebuilt from the config, never read from checkpoints)."""

import json

import numpy as np
import pytest

from tfrec_fashion.config import from_dict
from tfrec_fashion.data.dataset import FashionDataset, Interactions, Items, Users
from tfrec_fashion.data.synthetic import SyntheticWorldConfig, make_world
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.training.harness import evaluate_run, train
from tfrec_fashion.layers.item_content import item_features
from tfrec_fashion.training.run_config import RunConfig

TINY = {"name": "synthetic", "seed": 0, "n_users": 100, "n_items": 200, "n_time_epochs": 4,
        "mean_interactions_per_user": 15.0}
TRAIN = {"epochs": 2, "batch_size": 128, "steps_per_epoch": 10, "learning_rate": 0.01,
         "verbose": 0}


@pytest.fixture(scope="module")
def world():
    return make_world(SyntheticWorldConfig.tiny())


def test_dataset_and_attribute_features_are_standardised_and_named(world):
    features, names = item_features(world, "dataset")
    assert features.shape == (200, world.items.features.shape[1]) and len(names) == 48
    np.testing.assert_allclose(features.mean(axis=0), 0, atol=1e-5)
    onehot, names = item_features(world, "attributes", ["colour", "length"], standardize=False)
    assert set(np.unique(onehot)) == {0.0, 1.0} and (onehot.sum(axis=1) == 2).all()
    assert "colour=navy" in names and "length=long" in names


def test_efficientnet_features_come_from_the_real_imagenet_weights(world, real_data):
    from tfrec_fashion.data.torch_pickle import load_wheel_state_dict

    real_data(load_wheel_state_dict, "efficientnet-lite0")
    few = FashionDataset(name="few", users=world.users,
                         items=Items(ids=world.items.ids[:12], category=world.items.category[:12],
                                     images=world.items.images[:12]))
    features, names = item_features(few, "efficientnet", image_size=64, standardize=False)
    assert features.shape == (12, 1280) and len(names) == 1280
    assert np.isfinite(features).all() and (features >= 0).all()  # pooled ReLU6 activations
    assert features.std(axis=0).mean() > 0.01  # different images, different features


def test_feature_sources_refuse_what_the_dataset_lacks():
    bare = FashionDataset(name="bare", users=Users(ids=np.array(["u0"])),
                          items=Items(ids=np.array(["i0", "i1"]), category=np.array(["a", "b"])),
                          interactions=Interactions(np.array([0]), np.array([0]), np.array([0])))
    with pytest.raises(ConfigError, match="has no item features"):
        item_features(bare, "dataset")
    with pytest.raises(ConfigError, match="has no images in memory"):
        item_features(bare, "efficientnet")
    with pytest.raises(ConfigError, match="no attribute 'colour'"):
        item_features(bare, "attributes", ["colour"])


@pytest.mark.parametrize("model", [
    {"name": "bpr_mf"},
    {"name": "tvbpr", "n_time_epochs": 4},
    {"name": "ivbpr", "attributes": ["category", "colour"]},
    {"name": "dvbpr", "embedding_dim": 8},
    {"name": "dvbpr", "backbone": "gap_cnn", "embedding_dim": 8},  # batch norm statistics restored
])
def test_a_finished_run_re_evaluates_to_the_same_metrics(tmp_path, model):
    config = from_dict(RunConfig, {"model": model, "data": TINY, "train": TRAIN,
                                   "run_dir": str(tmp_path / "run"), "seed": 0})
    result = train(config)
    metrics = result.metrics
    for key in ("test_auc", "cold_test_auc", "random_test_auc", "popularity_test_auc",
                "visrank_test_auc", "oracle_test_auc", "oracle_cold_test_auc"):
        assert 0.0 <= metrics[key] <= 1.0, key
    # Tables and the demo read the run by the protocol it records.
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["protocol"] == "implicit"
    again = evaluate_run(tmp_path / "run")
    assert again["test_auc"] == pytest.approx(metrics["test_auc"], abs=1e-6)
    assert again["cold_test_auc"] == pytest.approx(metrics["cold_test_auc"], abs=1e-6)


def test_tvbpr_trains_on_the_epoch_of_each_interaction(tmp_path):
    config = from_dict(RunConfig, {"model": {"name": "tvbpr", "n_time_epochs": 4},
                                   "data": TINY, "train": TRAIN,
                                   "run_dir": str(tmp_path / "run"), "seed": 0})
    result = train(config)
    batch = next(iter(result.recipe.datasets()[0]))
    assert set(batch) == {"user", "pos_item", "neg_item", "epoch"}
    epochs = result.recipe.train_epoch_matrix()
    users, items = batch["user"].numpy(), batch["pos_item"].numpy()
    np.testing.assert_array_equal(batch["epoch"].numpy(),
                                  np.asarray(epochs[users, items]).ravel())
    # Every epoch of the world holds training interactions, so every time epoch is used.
    assert set(np.unique(epochs.data)) == {0, 1, 2, 3}
