"""The triplet loss of metric learning (Schroff et al. 2015), as complete the look trains its style
embedding (paper 004, section 2.2.4)::

    L(A, P, N) = max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + alpha, 0)

with f the embedding of the anchor A, the positive P (an item of another category from A's
outfit) and the negative N (an item of P's category from another outfit), and alpha the margin
(the paper: 0.2). On unit vectors ||x - y||^2 = 2 - 2 cos(x, y), so with L2-normalised
embeddings the loss asks cos(a, p) to beat cos(a, n) by alpha / 2.

    per_triplet = triplet_loss(anchor, positive, negative, margin=0.2)   # [batch], unreduced
    loss = tf.nn.compute_average_loss(per_triplet)   # a mean that stays right under tf.distribute
"""

from __future__ import annotations

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf


def squared_distance(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """||x - y||^2 over the last axis: float [batch] of x, y float [batch, d]."""
    return tf.reduce_sum(tf.square(x - y), axis=-1)


def triplet_loss(anchor: tf.Tensor, positive: tf.Tensor, negative: tf.Tensor,
                 margin: float = 0.2) -> tf.Tensor:
    """Unreduced triplet loss max(d(a, p) - d(a, n) + margin, 0) with d the squared Euclidean
    distance: float [batch] of embeddings float [batch, d] each (module docstring).

    Example:
    >>> a, p, n = tf.constant([[1.0, 0.0]]), tf.constant([[0.0, 1.0]]), tf.constant([[1.0, 0.0]])
    >>> float(triplet_loss(a, p, n, margin=0.2)[0])   # 2 - 0 + 0.2
    2.2
    """
    anchor = tf.convert_to_tensor(anchor)
    return tf.nn.relu(squared_distance(anchor, tf.cast(positive, anchor.dtype))
                      - squared_distance(anchor, tf.cast(negative, anchor.dtype)) + margin)
