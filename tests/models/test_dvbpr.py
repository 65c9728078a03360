"""DVBPR: eq. 5 on known values, Siamese weight sharing, learning from pixels (cold items included)
on a world of colour images built here, save/restore of the weights, config round trip."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.data.pipelines import bpr_dataset
from tfrec_fashion.data.samplers import BprTripletSampler
from tfrec_fashion.layers.cnn_f import CNNF, small_cnn
from tfrec_fashion.metrics import per_user_auc_from_embeddings
from tfrec_fashion.models.dvbpr import DVBPR

N_USERS, N_WARM, N_COLD, SIZE, K = 40, 40, 8, 32, 8
COLOURS = np.array([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.15, 0.2, 0.9], [0.9, 0.85, 0.1]])


def colour_world(seed=0):
    """48 items, solid colour images (4 colours, per-item shade, pixel noise); each user likes
    1-2 colours. Items 40..47 (2 per colour) are cold: no interaction, and not in the model."""
    rng = np.random.default_rng(seed)
    n_items = N_WARM + N_COLD
    colour = np.arange(n_items) % len(COLOURS)
    shades = COLOURS[colour] + rng.uniform(-0.1, 0.1, (n_items, 3))
    noise = rng.normal(0.0, 0.1, (n_items, SIZE, SIZE, 3))
    images = np.clip(shades[:, None, None, :] + noise, 0, 1).astype(np.float32)
    likes = np.zeros((N_USERS, len(COLOURS)), bool)
    for u in range(N_USERS):
        likes[u, rng.choice(len(COLOURS), rng.integers(1, 3), replace=False)] = True
    liked = likes[:, colour]
    train = np.zeros((N_USERS, n_items), bool)
    for u in range(N_USERS):
        warm = rng.permutation(np.flatnonzero(liked[u, :N_WARM]))
        train[u, warm[: len(warm) * 2 // 3]] = True
    cold = np.arange(n_items) >= N_WARM
    # Held out: every liked item not trained on, so the oracle (liking) has AUC 1.
    return SimpleNamespace(images=images, colour=colour, cold=cold, train=train,
                           test=liked & ~train)


def held_out_aucs(model, world):
    """Per-user AUC over all 48 items (cold ones embedded from their images) and cold items only."""
    items = tf.concat([model.item_vectors(batch_size=16),
                       model.embed_items(world.images[N_WARM:])], axis=0).numpy()
    users = model.user_vectors().numpy()
    return (per_user_auc_from_embeddings(users, items, world.test, world.train),
            per_user_auc_from_embeddings(users, items, world.test, world.train,
                                         item_mask=world.cold))


@pytest.fixture(scope="module")
def world():
    return colour_world(seed=0)


@pytest.fixture(scope="module")
def trained(world):
    tf.keras.utils.set_random_seed(0)
    model = DVBPR(N_USERS, N_WARM, small_cnn(output_dim=K), item_images=world.images[:N_WARM])
    before = held_out_aucs(model, world)
    # The sampler sees warm items only: cold images never pass through Phi during training.
    sampler = BprTripletSampler(world.train[:, :N_WARM], seed=0)
    model.compile(tf.keras.optimizers.Adam(1e-3))
    history = model.fit(bpr_dataset(sampler, batch_size=32, seed=0), epochs=30, verbose=0)
    return SimpleNamespace(model=model, history=history.history, before=before,
                           after=held_out_aucs(model, world))


def linear_backbone():
    """Phi(X) = mean colour of X times W (3 -> 2), no bias: values easy to compute by hand."""
    inputs = tf.keras.Input((2, 2, 3))
    mean = tf.keras.layers.GlobalAveragePooling2D()(inputs)
    kernel = tf.keras.initializers.Constant([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    outputs = tf.keras.layers.Dense(2, use_bias=False, kernel_initializer=kernel)(mean)
    return tf.keras.Model(inputs, outputs)


def test_loss_is_bpr_plus_half_lambda_theta_squared_on_known_values():
    colours = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 1.0]], np.float32)
    images = np.broadcast_to(colours[:, None, None, :], (3, 2, 2, 3))
    model = DVBPR(n_users=2, n_items=3, backbone=linear_backbone(), lambda_theta=0.5,
                  item_images=images)
    theta = np.array([[1.0, 2.0], [-1.0, 0.5]], np.float32)
    model.user_embedding.embeddings.assign(theta)
    phi = colours @ np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])  # [[1,0],[0,1],[1.5,-0.5]]
    np.testing.assert_allclose(model.item_vectors(), phi, rtol=1e-6)
    np.testing.assert_allclose(model.score(tf.constant([0, 1])), theta @ phi.T, rtol=1e-6)

    users, pos, neg = np.array([0, 1, 0]), np.array([1, 0, 2]), np.array([0, 2, 1])
    x_ui = np.sum(theta[users] * phi[pos], 1)  # 2, -1, 0.5
    x_uj = np.sum(theta[users] * phi[neg], 1)  # 1, -1.75, 2
    expected = np.mean(np.log1p(np.exp(-(x_ui - x_uj)))
                       + 0.5 * 0.5 * np.sum(theta[users] ** 2, 1))
    features = {"user": tf.constant(users, tf.int32), "pos_item": tf.constant(pos, tf.int32),
                "neg_item": tf.constant(neg, tf.int32)}
    assert float(model.compute_loss(features)) == pytest.approx(expected, rel=1e-6)
    assert float(model.task.pairwise_accuracy.result()) == pytest.approx(2 / 3)


def test_siamese_one_set_of_backbone_weights(world):
    model = DVBPR(N_USERS, N_WARM, small_cnn(output_dim=K), item_images=world.images[:N_WARM])
    variables = model.trainable_variables
    backbone = model.backbone.trainable_variables
    assert len({id(v) for v in variables}) == len(variables) == len(backbone) + 1
    assert {id(v) for v in variables} == {id(v) for v in backbone} | {
        id(model.user_embedding.embeddings)}
    assert id(model.item_images) not in {id(v) for v in model.variables}  # data, not a weight
    # The same image on both sides gives x_ui == x_uj exactly only if Phi is one network.
    users = tf.constant([0, 1, 2], tf.int32)
    same = tf.constant([3, 4, 5], tf.int32)
    theta = model.user_embedding(users)
    expected = np.log(2) + 0.5 * float(tf.reduce_mean(tf.reduce_sum(theta**2, -1)))
    loss = model.compute_loss({"user": users, "pos_item": same, "neg_item": same})
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_learns_from_pixels_including_cold_items(trained):
    all_items, cold_items = trained.after
    print(f"DVBPR colour world: held-out AUC {all_items:.3f}, cold-item AUC {cold_items:.3f} "
          f"(untrained {trained.before[0]:.3f} / {trained.before[1]:.3f})")
    assert all_items > 0.9
    assert cold_items > 0.9  # never seen in training: Phi ranks them from their pixels
    assert trained.history["pairwise_accuracy"][-1] > 0.8
    assert trained.history["loss"][-1] < trained.history["loss"][0]


def test_embed_items_agrees_with_item_vectors(trained, world, assert_close):
    model = trained.model
    # The same function along the same batch path: item_vectors in batches of 5 sends these
    # very images through Phi as its first batch (a batch of all items would let oneDNN block
    # the convolutions differently, which is rounding, not disagreement).
    assert_close(model.embed_items(world.images[:5]), model.item_vectors(batch_size=5)[:5])


def test_save_weights_restore_gives_identical_scores(trained, world, tmp_path):
    model = trained.model
    path = str(tmp_path / "weights")
    model.save_weights(path)
    fresh = DVBPR.from_config(json.loads(json.dumps(model.get_config())))
    fresh.set_item_images(world.images[:N_WARM])
    users = tf.range(N_USERS)
    assert not np.allclose(fresh.score(users), model.score(users))
    fresh.load_weights(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(fresh.score(users), model.score(users))
    # The image table is data: not in the checkpoint.
    shapes = {tuple(shape) for _, shape in tf.train.list_variables(path)}
    assert (N_WARM, SIZE, SIZE, 3) not in shapes and (N_USERS, K) in shapes


def test_config_round_trip_leaves_the_images_out(world):
    model = DVBPR(N_USERS, N_WARM, small_cnn(output_dim=K), lambda_theta=0.5,
                  item_images=world.images[:N_WARM])
    config = json.loads(json.dumps(model.get_config()))
    restored = DVBPR.from_config(config)
    assert json.loads(json.dumps(restored.get_config())) == config
    assert isinstance(restored.backbone, CNNF) and restored.embedding_dim == K
    assert "item_images" not in config
    with pytest.raises(ValueError, match="set_item_images"):
        restored.item_vectors()


def test_set_item_images_replaces_values_in_place(world):
    model = DVBPR(N_USERS, N_WARM, small_cnn(output_dim=K), item_images=world.images[:N_WARM])
    table = model.item_images
    before = model.score(tf.constant([0])).numpy()
    model.set_item_images(world.images[N_COLD:N_COLD + N_WARM])
    assert model.item_images is table
    assert not np.allclose(model.score(tf.constant([0])), before)


def test_any_backbone_and_bad_inputs_are_named(world):
    unbuilt = tf.keras.Sequential([tf.keras.layers.Conv2D(4, 3), tf.keras.layers.Flatten(),
                                   tf.keras.layers.Dense(5)])
    with pytest.raises(ValueError, match="pass image_shape"):
        DVBPR(2, 3, unbuilt)
    model = DVBPR(2, 3, unbuilt, image_shape=(8, 8, 3))
    assert model.embedding_dim == 5 and model.item_vectors  # built by the dummy call

    model = DVBPR(N_USERS, N_WARM, small_cnn(output_dim=K))
    with pytest.raises(ValueError, match=r"shape \(40, 32, 32, 3\)"):
        model.set_item_images(world.images)
    with pytest.raises(ValueError, match="dtype=uint8"):
        model.set_item_images((world.images[:N_WARM] * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="max=2"):
        model.set_item_images(world.images[:N_WARM] * 2)
    with pytest.raises(ValueError, match=r"Received: shape=\(2, 16, 16, 3\)"):
        model.embed_items(np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="n_users=0"):
        DVBPR(0, 3, small_cnn())
