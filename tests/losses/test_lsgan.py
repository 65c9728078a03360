"""LSGAN's least-squares losses (paper 003 eq. 7, eq. 9's L_real) against hand-computed values."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.losses.lsgan import discriminator_loss, generator_loss, realism_penalty


def test_realism_penalty_is_the_squared_distance_to_real_elementwise():
    # (0.5 - 1)^2, (1 - 1)^2, (-1 - 1)^2, (2 - 1)^2
    penalty = realism_penalty(tf.constant([[0.5, 1.0], [-1.0, 2.0]]))
    np.testing.assert_allclose(penalty.numpy(), [[0.25, 0.0], [4.0, 1.0]])


def test_discriminator_loss_is_the_mean_real_error_plus_the_mean_fake_error():
    # real: ((0.9 - 1)^2 + (0.5 - 1)^2) / 2 = (0.01 + 0.25) / 2 = 0.13
    # fake: (0.2^2 + (-0.1)^2 + 0.4^2) / 3 = (0.04 + 0.01 + 0.16) / 3 = 0.07
    loss = discriminator_loss(tf.constant([0.9, 0.5]), tf.constant([0.2, -0.1, 0.4]))
    assert float(loss) == pytest.approx(0.13 + 0.07, rel=1e-6)


def test_a_perfect_discriminator_has_no_loss_and_a_fooled_one_pays_two():
    assert float(discriminator_loss(tf.ones(4), tf.zeros(4))) == 0.0
    # Real called fake and fake called real: (0 - 1)^2 + 1^2.
    assert float(discriminator_loss(tf.zeros(4), tf.ones(4))) == pytest.approx(2.0)


def test_generator_loss_is_the_mean_realism_penalty_of_the_fakes():
    # ((0 - 1)^2 + (0.5 - 1)^2 + (1 - 1)^2 + (3 - 1)^2) / 4 = (1 + 0.25 + 0 + 4) / 4 = 1.3125
    assert float(generator_loss(tf.constant([0.0, 0.5, 1.0, 3.0]))) == pytest.approx(1.3125)
    assert float(generator_loss(tf.ones(3))) == 0.0


def test_the_losses_gradients_are_the_least_squares_ones():
    real, fake = tf.Variable([0.5]), tf.Variable([0.25])
    with tf.GradientTape(persistent=True) as tape:
        d_loss = discriminator_loss(real, fake)
        g_loss = generator_loss(fake)
    # d/dr (r - 1)^2 = 2 (r - 1) = -1; d/df f^2 = 2 f = 0.5; d/df (f - 1)^2 = 2 (f - 1) = -1.5
    np.testing.assert_allclose(tape.gradient(d_loss, real).numpy(), [-1.0])
    np.testing.assert_allclose(tape.gradient(d_loss, fake).numpy(), [0.5])
    np.testing.assert_allclose(tape.gradient(g_loss, fake).numpy(), [-1.5])
