"""PSA-Net (paper 000, section 3.2): the masks and attention weights' shapes and sums, eq. 2 and
the attention MLP against NumPy, the contrastive and triplet losses on hand-computed values, the
model-level switches (not personalised, one subspace, the fully-connected combiner), the unknown
customer's mean embedding and flag, the serving scorer's call surface, the config and checkpoint
round trip (features and CNN backbones), and learning on fresh planted worlds: held-out pair AUC
well above chance, most of the way to the personal oracle and above the variant that is not
personalised.

The customer embeddings here are a random linear image of the planted subspace weights plus
noise: the best case of what a Partial Dual or StyNet run recovers, so these tests hold the model
to using an embedding, not the embedding runs to their accuracy (the recipe's protocol does).
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.data.synthetic import SyntheticWorldConfig, make_world
from tfrec_fashion.evaluation.pairs import PairEvaluation
from tfrec_fashion.layers.gap_cnn import GapCNN
from tfrec_fashion.layers.item_content import item_features, item_images
from tfrec_fashion.models.psa_net import PSANet
from tfrec_fashion.training.serving_parts import PairScorer

CUSTOMER_DIM = 8


def planted(seed: int, n_users: int = 200, n_items: int = 200, votes: int = 40):
    """A tiny planted world's pair votes, split per customer, its one-hot attributes
    (standardised) as item features, 16x16 images, and customer embeddings from the planted
    subspace weights (see the module docstring)."""
    world = make_world(SyntheticWorldConfig.tiny(seed=seed, n_users=n_users, n_items=n_items,
                                                 pair_ratings_per_user=votes, image_size=16))
    features, _ = item_features(world, "attributes")
    weights = world.truth["user_subspace_weights"]
    rng = np.random.default_rng(seed)
    embeddings = (weights @ rng.normal(size=(weights.shape[1], CUSTOMER_DIM))
                  + 0.05 * rng.normal(size=(n_users, CUSTOMER_DIM))).astype(np.float32)
    return SimpleNamespace(world=world, features=features, embeddings=embeddings,
                           evaluation=PairEvaluation(world, seed=seed))


def votes(data, split: str = "train") -> dict[str, np.ndarray]:
    pairs = getattr(data.evaluation.split, split)
    return {"user": pairs.user.astype(np.int32), "item_a": pairs.item_a.astype(np.int32),
            "item_b": pairs.item_b.astype(np.int32), "label": pairs.label.astype(np.float32)}


def features_model(data, **kwargs) -> PSANet:
    return PSANet(data.world.n_items, len(data.world.users), CUSTOMER_DIM,
                  data.features.shape[1:], item_content=data.features,
                  customer_embeddings=data.embeddings, **kwargs)


def identity_backbone(dim: int) -> tf.keras.Model:
    """X = the content itself, so losses can be computed by hand."""
    return tf.keras.Sequential([tf.keras.Input((dim,)), tf.keras.layers.Dense(
        dim, use_bias=False, kernel_initializer="identity")], name="identity")


@pytest.fixture(scope="module")
def world():
    return planted(seed=1, n_users=60, n_items=80, votes=20)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_masks_and_attention_have_their_shapes_and_the_weights_sum_to_one(world, k):
    model = features_model(world, subspaces=k, representation_dim=6)
    assert model.subspace_masks.shape == (k, 6)
    users = tf.constant([0, 5, 59])
    weights = model.attention_weights(users).numpy()
    assert weights.shape == (3, k) and (weights > 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    x = model.represent(world.features[:4])
    assert x.shape == (4, 6)
    assert model.subspace_embeddings(x).shape == (4, k, 6)
    assert model.embed(x, model.attention_weights(tf.constant([0, 1, 2, 3]))).shape == (4, 6)


def test_eq2_and_the_attention_mlp_against_numpy(world):
    tf.keras.utils.set_random_seed(0)
    model = features_model(world, subspaces=3)
    users, tops, bottoms = np.array([0, 7, 30]), np.array([1, 2, 3]), np.array([10, 11, 12])
    # w = softmax(MLP(E_c)): ReLU hidden layer, then k logits.
    (w1, b1), (w2, b2) = [layer.get_weights() for layer in model.attention.layers]
    logits = np.maximum(world.embeddings[users] @ w1 + b1, 0) @ w2 + b2
    expected_w = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    weights = model.attention_weights(users).numpy()
    np.testing.assert_allclose(weights, expected_w, rtol=1e-5)
    # f = sum_i w_i (X ⊙ m_i)  (eq. 2)
    masks = model.subspace_masks.numpy()
    x_a = model.represent(world.features[tops]).numpy()
    x_b = model.represent(world.features[bottoms]).numpy()

    def eq2(x):
        return sum(weights[:, i, None] * x * masks[i] for i in range(3))

    np.testing.assert_allclose(model.embed(x_a, weights).numpy(), eq2(x_a), rtol=1e-5,
                               atol=1e-6)
    expected_scores = -np.linalg.norm(eq2(x_a) - eq2(x_b), axis=1)
    scores = model({"user": users, "item_a": tops, "item_b": bottoms}).numpy()
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)


def hand_model(loss: str, margin: float) -> PSANet:
    """Items X = (0, 0), (2, 1), (1, -1); masks (1, 0) and (0, 2); w = (1/4, 3/4) for everyone,
    so the customer's mixed mask is sum_i w_i m_i = (0.25, 1.5)."""
    model = PSANet(3, 2, 1, (2,), backbone=identity_backbone(2), subspaces=2,
                   personalised=False, loss=loss, margin=margin,
                   item_content=[[0.0, 0.0], [2.0, 1.0], [1.0, -1.0]])
    model.subspace_masks.assign([[1.0, 0.0], [0.0, 2.0]])
    model.attention_logits.assign([0.0, np.log(3.0)])
    return model


# d(0, 1) = ||(2, 1) ⊙ (0.25, 1.5)|| = sqrt(0.25 + 2.25); d(0, 2) = ||(1, -1) ⊙ (0.25, 1.5)||
D01, D02 = np.sqrt(2.5), np.sqrt(0.0625 + 2.25)
BATCH = {"user": tf.constant([0, 1]), "item_a": tf.constant([0, 0]),
         "item_b": tf.constant([1, 2]), "label": tf.constant([1.0, -1.0])}


def test_the_contrastive_loss_on_hand_computed_values(assert_close):
    model = hand_model("contrastive", margin=2.0)
    # +1: d^2; -1: max(0, m - d)^2
    assert_close(model.compute_loss(BATCH).numpy(), np.mean([D01 ** 2, (2.0 - D02) ** 2]),
                 ulps=64)
    assert_close(model(BATCH).numpy(), [-D01, -D02], ulps=16)


def test_the_triplet_loss_on_hand_computed_values(assert_close):
    model = hand_model("triplet", margin=0.5)
    batch = {**BATCH, "item_c": tf.constant([2, 0])}
    # (0, 1, +1) against item 2: max(0, d(0, 1) - d(0, 2) + m); (0, 2, -1) against item 0:
    # max(0, d(0, 0) - d(0, 2) + m) = 0 (d(0, 0) ~ 0).
    assert_close(model.compute_loss(batch).numpy(), np.mean([D01 - D02 + 0.5, 0.0]), ulps=64)
    # Without "item_c" the third image is drawn uniformly: a finite loss, any draw.
    assert np.isfinite(model.compute_loss(BATCH).numpy())


def test_not_personalised_gives_every_customer_the_same_weights_without_embeddings(world):
    model = PSANet(world.world.n_items, 60, CUSTOMER_DIM, world.features.shape[1:],
                   personalised=False, item_content=world.features)
    model.attention_logits.assign([0.5, -1.0, 2.0])
    weights = model.attention_weights(tf.constant([0, 3, 59, -1])).numpy()
    expected = np.exp([0.5, -1.0, 2.0]) / np.exp([0.5, -1.0, 2.0]).sum()
    np.testing.assert_allclose(weights, np.tile(expected, (4, 1)), rtol=1e-6)
    assert np.isfinite(model(votes(world)).numpy()).all()  # no customer embeddings read
    assert not any("attention" in v.name and "kernel" in v.name for v in model.variables)


def test_one_subspace_is_one_space_for_everyone(world):
    model = features_model(world, subspaces=1)
    np.testing.assert_allclose(model.attention_weights(tf.range(60)).numpy(), 1.0)


def test_the_fc_combiner_with_diagonal_maps_is_the_masks(world):
    tf.keras.utils.set_random_seed(2)
    masks = features_model(world, subspaces=2)
    fc = features_model(world, subspaces=2, combiner="fc")
    fc.backbone.set_weights(masks.backbone.get_weights())
    fc.attention.set_weights(masks.attention.get_weights())
    fc.subspace_projections.assign(tf.linalg.diag(masks.subspace_masks))
    batch = votes(world)
    np.testing.assert_allclose(fc(batch).numpy(), masks(batch).numpy(), rtol=1e-5)


def test_an_unknown_customer_gets_the_mean_embedding_and_a_flag(world):
    model = features_model(world)
    vectors, known = model.customer_vectors_for(tf.constant([3, -1, 60, 1000]))
    np.testing.assert_array_equal(known.numpy(), [True, False, False, False])
    mean = world.embeddings.mean(axis=0)
    np.testing.assert_allclose(vectors.numpy()[0], world.embeddings[3])
    np.testing.assert_allclose(vectors.numpy()[1:], np.tile(mean, (3, 1)), rtol=1e-5)
    weights = model.attention_weights(tf.constant([-1, 60])).numpy()
    np.testing.assert_allclose(weights, model.subspace_attention(np.tile(mean, (2, 1))),
                               rtol=1e-5)


def test_pair_scores_is_the_serving_scorer_of_customer_vectors_and_representations(world):
    model = features_model(world)
    batch = votes(world)
    x = model.item_representations(batch_size=32).numpy()
    assert x.shape == (world.world.n_items, model.item_dim)
    scorer = PairScorer(model.customer_dim, model.item_dim, model.pair_scores, model.variables)
    traced = tf.function(scorer.score, input_signature=scorer.input_signature())
    scores = traced(world.embeddings[batch["user"]], x[batch["item_a"]], x[batch["item_b"]])
    np.testing.assert_allclose(scores.numpy(), model(batch).numpy(), rtol=1e-5, atol=1e-6)


def test_bad_input_is_refused_by_name(world):
    model = features_model(world)
    with pytest.raises(ValueError, match=r"customer_embeddings must be \[60, 8\]"):
        model.set_customer_embeddings(world.embeddings[:, :3])
    with pytest.raises(ValueError, match=r"item_content must be \[80, "):
        model.set_item_content(world.features[:5])
    with pytest.raises(ValueError, match="combiner must be one of"):
        features_model(world, combiner="sum")
    with pytest.raises(ValueError, match="subspaces must be a positive integer"):
        features_model(world, subspaces=0)
    with pytest.raises(ValueError, match="pass an image backbone"):
        PSANet(80, 60, CUSTOMER_DIM, (16, 16, 3))
    with pytest.raises(ValueError, match="has no customer embeddings"):
        PSANet(80, 60, CUSTOMER_DIM, world.features.shape[1:]).attention_weights([0])


def small_gap_cnn() -> GapCNN:
    return GapCNN(output_dim=8, image_shape=(16, 16, 3), widths=(4, 8), weight_decay=0.0)


def image_model(world, **kwargs) -> PSANet:
    return PSANet(world.world.n_items, 60, CUSTOMER_DIM, (16, 16, 3), backbone=small_gap_cnn(),
                  item_content=item_images(world.world, 16),
                  customer_embeddings=world.embeddings, **kwargs)


@pytest.mark.parametrize("build", [features_model, image_model], ids=["features", "cnn"])
def test_the_model_rebuilds_from_its_config_and_checkpoint(world, build, tmp_path):
    model = build(world, subspaces=2, loss="triplet")
    config = model.get_config()
    json.dumps(config)
    model.save_weights(str(tmp_path / "checkpoint"))
    twin = PSANet.from_config(config)
    twin.load_weights(str(tmp_path / "checkpoint")).assert_existing_objects_matched()
    twin.set_item_content(model._item_content.get(model.name))
    twin.set_customer_embeddings(world.embeddings)
    batch = votes(world)
    np.testing.assert_allclose(twin(batch).numpy(), model(batch).numpy(), rtol=1e-5)
    assert twin.pair_loss == "triplet" and twin.get_config() == config


@pytest.mark.parametrize("build, kwargs", [
    (features_model, {}), (features_model, {"loss": "triplet"}),
    (features_model, {"combiner": "fc"}), (features_model, {"personalised": False}),
    (image_model, {})], ids=["contrastive", "triplet", "fc", "global", "cnn"])
def test_fit_lowers_the_loss_on_pair_votes(world, build, kwargs):
    tf.keras.utils.set_random_seed(4)
    model = build(world, **kwargs)
    batch = votes(world)
    # A fixed third image per vote, so the triplet loss is the same function before and after.
    batch["item_c"] = np.random.default_rng(0).integers(0, world.world.n_items,
                                                        len(batch["user"])).astype(np.int32)
    before = float(model.compute_loss(batch, training=True))
    model.compile(tf.keras.optimizers.Adam(0.01))
    model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(64), epochs=4, verbose=0)
    after = float(model.compute_loss(batch, training=True))
    assert after < 0.9 * before, (before, after)


def test_pretrained_layers_take_scaled_steps_and_are_checked(world):
    """One Adam step moves every parameter by about the learning rate whatever its gradient's
    size, so the pretrained layer's step is the scale times the others'."""
    dim = world.features.shape[1]
    # No biases: a pair's distance reads X_a - X_b, to which a bias contributes nothing.
    backbone = tf.keras.Sequential([
        tf.keras.Input((dim,)), tf.keras.layers.Dense(12, use_bias=False, name="pretrained"),
        tf.keras.layers.Dense(8, use_bias=False, name="head")], name="backbone")
    model = PSANet(world.world.n_items, 60, CUSTOMER_DIM, (dim,), backbone=backbone,
                   pretrained_layers=["pretrained"], pretrained_learning_rate_scale=0.01,
                   item_content=world.features, customer_embeddings=world.embeddings)
    model.compile(tf.keras.optimizers.Adam(0.1))
    assert model.pretrained_optimizer.get_config()["learning_rate"] == pytest.approx(0.001)
    before = [v.numpy() for v in model.trainable_variables]
    model.fit(tf.data.Dataset.from_tensor_slices(votes(world)).batch(4096), epochs=1,
              verbose=0)
    slow = {id(v) for v in backbone.get_layer("pretrained").trainable_variables}
    assert len(slow) == 1
    for variable, old in zip(model.trainable_variables, before):
        step = np.abs(variable.numpy() - old).max()
        if id(variable) in slow:
            assert 0.0005 < step < 0.0015, (variable.name, step)
        else:
            assert step > 0.05, (variable.name, step)
    assert model.get_config()["pretrained_layers"] == ["pretrained"]
    with pytest.raises(ValueError, match=r"names layers the backbone lacks: \['nope'\]"):
        PSANet(world.world.n_items, 60, CUSTOMER_DIM, (dim,), backbone=backbone,
               pretrained_layers=["nope"])
    with pytest.raises(ValueError, match=r"pretrained_learning_rate_scale must be in \(0, 1\]"):
        features_model(world, pretrained_learning_rate_scale=0.0)


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_it_learns_personal_compatibility_on_fresh_worlds(seed):
    data = planted(seed)
    batch = votes(data)
    train = tf.data.Dataset.from_tensor_slices(batch).shuffle(len(batch["user"]), seed=seed)
    train = train.batch(128)
    results = {}
    for name, kwargs in (("psa_net", {}), ("global", {"personalised": False})):
        tf.keras.utils.set_random_seed(seed)
        model = features_model(data, **kwargs)
        model.compile(tf.keras.optimizers.Adam(0.01))
        model.fit(train, epochs=15, verbose=0)

        def score(user, item_a, item_b):
            return model({"user": user, "item_a": item_a, "item_b": item_b}).numpy()

        results[name] = data.evaluation.evaluate(score)
    psa, other = results["psa_net"], results["global"]
    # Measured over seeds 3-12 of this world (nothing tuned on them) and again on 7-9 in another
    # process (training is not bit-reproducible across runs): pooled AUC 0.83-0.86 (chance
    # 0.5), 76-85% of the way from chance to the personal oracle (0.92-0.95) and 0.07-0.15
    # above the variant that is not personalised (0.71-0.77). Customer-level AUC (about four
    # held-out votes per customer) is noisier: 0.02-0.11 above that variant, so not held here.
    oracle = psa["oracle_test_auc"]
    assert psa["test_auc"] > 0.75, results
    assert psa["test_auc"] - 0.5 > 0.6 * (oracle - 0.5), results
    assert psa["test_auc"] < oracle, results
    assert psa["test_auc"] > other["test_auc"] + 0.04, results
