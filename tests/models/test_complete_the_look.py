"""Complete the look (paper 004): the triplet loss and its task against hand-computed values, the
style embedding's unit norm, the batch-norm switch (its layer and its moving statistics exist
only with it), the forward pass against NumPy with the model's own weights, the config round
trip (feature content and a CNN backbone), fit lowering the loss on a learnable toy, and clear
errors."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.layers.gap_cnn import GapCNN
from tfrec_fashion.losses.triplet import triplet_loss
from tfrec_fashion.models.complete_the_look import CompleteTheLook
from tfrec_fashion.tasks.triplets import StyleTriplets

N_ITEMS, N_FEATURES = 24, 6


def content(seed=0):
    return np.random.default_rng(seed).normal(size=(N_ITEMS, N_FEATURES)).astype(np.float32)


def test_triplet_loss_against_hand_computed_values():
    anchor = tf.constant([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    positive = tf.constant([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    negative = tf.constant([[1.0, 0.0], [0.0, 1.0], [3.0, 2.0]])
    # d(a,p) - d(a,n) + 0.2: 2 - 0 + 0.2; 0 - 2 + 0.2 -> 0; 1 - 9 + 0.2 -> 0
    np.testing.assert_allclose(triplet_loss(anchor, positive, negative, 0.2).numpy(),
                               [2.2, 0.0, 0.0], rtol=1e-6)
    # A margin larger than the gap: 0 - 2 + 3 = 1 on the second row.
    np.testing.assert_allclose(triplet_loss(anchor, positive, negative, 3.0).numpy(),
                               [5.0, 1.0, 0.0], rtol=1e-6)


def test_task_averages_the_loss_and_counts_triplets_ranked_right():
    task = StyleTriplets(margin=0.2)
    anchor = tf.constant([[1.0, 0.0], [1.0, 0.0]])
    positive = tf.constant([[0.0, 1.0], [1.0, 0.0]])
    negative = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    assert math.isclose(float(task(anchor, positive, negative)), (2.2 + 0.0) / 2, rel_tol=1e-6)
    assert float(task.accuracy.result()) == 0.5  # the second triplet only
    with pytest.raises(ValueError, match="margin must be positive. Received: margin=0"):
        StyleTriplets(margin=0.0)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_style_embeddings_are_unit_vectors_and_the_forward_pass_is_the_method(batch_norm):
    model = CompleteTheLook(N_ITEMS, (N_FEATURES,), hidden_dim=8, embedding_dim=5,
                            batch_norm=batch_norm, item_content=content())
    style = model.item_style_embeddings().numpy()
    assert style.shape == (N_ITEMS, 5)
    np.testing.assert_allclose(np.linalg.norm(style, axis=1), 1.0, rtol=1e-5)
    # fc -> (batch norm, inference: moving statistics) -> ReLU -> fc -> L2, in NumPy.
    hidden = content() @ model.fc_hidden.kernel.numpy() + model.fc_hidden.bias.numpy()
    if batch_norm:
        bn = model.normalization
        hidden = (bn.gamma.numpy() * (hidden - bn.moving_mean.numpy())
                  / np.sqrt(bn.moving_variance.numpy() + bn.epsilon) + bn.beta.numpy())
    out = np.maximum(hidden, 0) @ model.fc_style.kernel.numpy() + model.fc_style.bias.numpy()
    np.testing.assert_allclose(style, out / np.linalg.norm(out, axis=1, keepdims=True),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.compatibility([0, 1], [2, 3]).numpy(),
                               [style[0] @ style[2], style[1] @ style[3]], rtol=1e-5)
    names = [w.name for w in model.weights]
    assert any("batch_norm" in name for name in names) == batch_norm
    assert len(model.non_trainable_weights) == (2 if batch_norm else 0)  # moving mean, var


def test_config_round_trip_with_features_and_with_a_cnn_backbone():
    model = CompleteTheLook(N_ITEMS, (N_FEATURES,), hidden_dim=8, embedding_dim=4,
                            batch_norm=False, dropout_rate=0.1, margin=0.3, l2=0.01)
    config = json.loads(json.dumps(model.get_config()))
    twin = CompleteTheLook.from_config(config)
    assert json.loads(json.dumps(twin.get_config())) == config and not twin.batch_norm
    twin.set_weights(model.get_weights())
    twin.set_item_content(content(1))
    model.set_item_content(content(1))
    np.testing.assert_allclose(twin(np.arange(5)).numpy(), model(np.arange(5)).numpy(),
                               rtol=1e-6)

    cnn = GapCNN(output_dim=1, image_shape=(8, 8, 3), widths=(4, 8), weight_decay=0.0)
    backbone = tf.keras.Model(cnn.inputs, cnn.get_layer("gap").output)
    images = np.random.default_rng(2).random((N_ITEMS, 8, 8, 3)).astype(np.float32)
    model = CompleteTheLook(N_ITEMS, (8, 8, 3), backbone=backbone, hidden_dim=8,
                            embedding_dim=4, item_content=images)
    config = json.loads(json.dumps(model.get_config()))
    twin = CompleteTheLook.from_config(config)
    twin.set_weights(model.get_weights())
    twin.set_item_content(images)
    np.testing.assert_allclose(twin.item_style_embeddings().numpy(),
                               model.item_style_embeddings().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.style_embeddings(images[:3]).numpy(),
                               model(np.arange(3)).numpy(), rtol=1e-6)


def test_fit_learns_a_toy_compatibility():
    """Items 0-11 go with 12-23 of the same parity: triplets (a, p same parity, n other)."""
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    features = np.eye(N_ITEMS, dtype=np.float32)
    anchor = rng.integers(0, 12, 512)
    positive = 12 + (rng.integers(0, 6, 512) * 2 + anchor % 2)
    negative = 12 + (rng.integers(0, 6, 512) * 2 + 1 - anchor % 2)
    data = tf.data.Dataset.from_tensor_slices(
        {"anchor": anchor.astype(np.int32), "positive": positive.astype(np.int32),
         "negative": negative.astype(np.int32)}).batch(64)
    model = CompleteTheLook(N_ITEMS, (N_ITEMS,), hidden_dim=16, embedding_dim=8,
                            item_content=features)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    history = model.fit(data, epochs=15, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    right = model.compatibility(anchor, positive).numpy() > model.compatibility(
        anchor, negative).numpy()
    assert right.mean() > 0.95


def test_bad_arguments_and_a_missing_table_are_named():
    with pytest.raises(ValueError, match="embedding_dim must be a positive integer. "
                                         "Received: embedding_dim=0"):
        CompleteTheLook(N_ITEMS, (N_FEATURES,), embedding_dim=0)
    with pytest.raises(ValueError, match=r"dropout_rate must be in \[0, 1\)"):
        CompleteTheLook(N_ITEMS, (N_FEATURES,), dropout_rate=1.0)
    model = CompleteTheLook(N_ITEMS, (N_FEATURES,), hidden_dim=4, embedding_dim=2)
    with pytest.raises(ValueError, match="has no item content: pass item_content="):
        model(np.arange(2))
    with pytest.raises(ValueError, match=r"item_content must be \[24, 6\]. Received: "
                                         r"shape=\(24, 5\)"):
        model.set_item_content(np.zeros((N_ITEMS, 5)))
