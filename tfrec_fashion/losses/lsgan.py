"""Least-squares GAN losses (Mao et al. 2017; DVBPR paper 003, section III-C, eq. 7 and 9).

The discriminator D predicts 1 for a real image and 0 for a generated one, and each side is held
to its target by a squared error instead of the cross-entropy of the original GAN::

    L_real(x, c) = (D(x, c) - 1)^2          L_fake(x, c) = D(x, c)^2
    V(D) = E_x L_real(x, c) + E_z L_fake(G(z, c), c)                     eq. 7, min over D
    V(G) = E_z L_real(G(z, c), c)                                        eq. 7, min over G

and personalised design (eq. 9) penalises an image by ``realism_penalty`` = L_real, eta times.

D's outputs are unbounded scores (no sigmoid): the least-squares targets 0 and 1 pull them there.
The two objectives are batch means over this replica's batch; a ``train_step`` under a
``tf.distribute`` strategy divides them by the number of replicas before taking gradients, as
Keras' compiled losses do.
"""

from __future__ import annotations

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf


def realism_penalty(output: tf.Tensor) -> tf.Tensor:
    """L_real = (D(x, c) - 1)^2 elementwise: how far D is from calling x real (eq. 7, eq. 9).

    Args:
        output: D's scores, float [...] (1 = real).

    Returns:
        float, the same shape.
    """
    output = tf.convert_to_tensor(output)
    return tf.square(output - tf.cast(1.0, output.dtype))


def discriminator_loss(real_output: tf.Tensor, fake_output: tf.Tensor) -> tf.Tensor:
    """V(D) of eq. 7: mean (D(x) - 1)^2 over real images + mean D(G(z))^2 over generated ones.

    Args:
        real_output: D's scores of real images, float [batch].
        fake_output: D's scores of generated images, float [batch'] (any size).

    Returns:
        The scalar loss.

    Example:
    >>> round(float(discriminator_loss(tf.constant([1.0, 0.0]), tf.constant([0.5]))), 6)
    0.75
    """
    fake_output = tf.convert_to_tensor(fake_output)
    return (tf.reduce_mean(realism_penalty(real_output))
            + tf.reduce_mean(tf.square(fake_output)))


def generator_loss(fake_output: tf.Tensor) -> tf.Tensor:
    """V(G) of eq. 7: mean (D(G(z)) - 1)^2, G's images scored as if they were real.

    Args:
        fake_output: D's scores of generated images, float [batch].

    Returns:
        The scalar loss.

    Example:
    >>> round(float(generator_loss(tf.constant([0.0, 0.5]))), 6)
    0.625
    """
    return tf.reduce_mean(realism_penalty(fake_output))
