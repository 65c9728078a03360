"""BPR loss: hand-computed values, gradient signs, stability at extreme margins, reductions, config
round trip, and the pairwise base a new loss fills in with one method."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.losses.bpr import BprLoss, PairwiseLoss, bpr_loss

NONE = tf.keras.losses.Reduction.NONE


def test_hand_computed_values():
    x_ui = tf.constant([0.0, 1.0, 0.5, 3.0])
    x_uj = tf.constant([0.0, 0.0, 2.5, 3.0])
    # -ln sigma(m) = ln(1 + e^-m) for margins 0, 1, -2, 0
    expected = [math.log(2.0), math.log(1 + math.exp(-1)), math.log(1 + math.exp(2)), math.log(2)]
    np.testing.assert_allclose(BprLoss(reduction=NONE)(x_ui, x_uj), expected, rtol=1e-6)
    np.testing.assert_allclose(bpr_loss(x_ui, x_uj), expected, rtol=1e-6)
    assert float(BprLoss()(x_ui, x_uj)) == pytest.approx(np.mean(expected), rel=1e-6)
    weights = tf.constant([1.0, 0.0, 2.0, 0.0])
    assert float(BprLoss()(x_ui, x_uj, sample_weight=weights)) == pytest.approx(
        (expected[0] + 2 * expected[2]) / 4, rel=1e-6)  # mean over the batch of weighted terms
    assert float(BprLoss(reduction="sum")(x_ui, x_uj)) == pytest.approx(sum(expected), rel=1e-6)


def test_gradient_raises_the_positive_and_lowers_the_negative():
    x_ui, x_uj = tf.Variable([0.3, -1.0]), tf.Variable([0.0, 1.0])
    with tf.GradientTape() as tape:
        loss = BprLoss(reduction="sum")(x_ui, x_uj)
    d_ui, d_uj = tape.gradient(loss, [x_ui, x_uj])
    sigmoid = 1 / (1 + np.exp(np.array([0.3, -2.0])))  # sigma(-margin)
    np.testing.assert_allclose(d_ui, -sigmoid, rtol=1e-6)  # descent raises x_ui ...
    np.testing.assert_allclose(d_uj, sigmoid, rtol=1e-6)  # ... and lowers x_uj


def test_stable_at_extreme_margins():
    x_ui = tf.Variable([1e4, -1e4, 100.0, -100.0])
    x_uj = tf.zeros(4)
    with tf.GradientTape() as tape:
        losses = BprLoss(reduction=NONE)(x_ui, x_uj)
        total = tf.reduce_sum(losses)
    np.testing.assert_allclose(losses, [0.0, 1e4, 0.0, 100.0], atol=1e-6)
    np.testing.assert_allclose(tape.gradient(total, x_ui), [0, -1, 0, -1], atol=1e-6)


def test_config_round_trip_and_keras_serialization():
    loss = BprLoss(reduction="sum", name="bpr_sum")
    config = loss.get_config()
    assert config == {"reduction": "sum", "name": "bpr_sum"}
    assert BprLoss.from_config(config).get_config() == config
    restored = tf.keras.losses.deserialize(tf.keras.losses.serialize(loss))
    assert isinstance(restored, BprLoss) and restored.get_config() == config


def test_a_pairwise_loss_is_one_method():
    with pytest.raises(TypeError, match="abstract"):
        PairwiseLoss()

    class Hinge(PairwiseLoss):
        def pairwise_loss(self, margin):
            return tf.nn.relu(1.0 - margin)

    np.testing.assert_allclose(Hinge(reduction=NONE)([2.0, 0.5, 0.0], [0.0, 0.0, 1.0]),
                               [0.0, 0.5, 2.0])
