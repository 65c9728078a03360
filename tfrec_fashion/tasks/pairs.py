"""The contrastive pair task (Hadsell, Chopra and LeCun 2006; PSA-Net trains with it, paper 000
section 3): a model embeds both items of a rated pair and calls the task with their distance::

    self.task = ContrastivePairs(margin=1.0)
    ...
    def compute_loss(self, inputs, training=False):
        distance = ...                                  # float [batch], >= 0
        return self.task(distance, inputs["label"])     # labels +1 / -1

Per pair: d^2 for a compatible pair (+1), max(0, margin - d)^2 for an incompatible one (-1);
the mean over the global batch (``tf.nn.compute_average_loss``, so summed replica gradients stay
a mean). The ``pair_accuracy`` metric is the share of pairs on the right side of margin / 2,
the distance midway between where the loss pulls the two classes; Keras logs it under that name
because the task is a layer of the model.
"""

from __future__ import annotations

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf


class ContrastivePairs(tf.keras.layers.Layer):
    """The contrastive loss of labelled pairs and its accuracy (see the module docstring).

    Args:
        margin: m > 0, the distance beyond which an incompatible pair costs nothing.

    Call: ``task(distances, labels, *penalties)`` with distances float [batch] (>= 0), labels
    [batch] in {+1, -1} (any numeric dtype) and each penalty a per-pair float [batch] or a
    scalar; returns the scalar loss.
    """

    def __init__(self, margin: float = 1.0, name: str = "contrastive_pairs", **kwargs):
        super().__init__(name=name, **kwargs)
        if not margin > 0:
            raise ValueError(f"margin must be positive. Received: margin={margin}")
        self.margin = float(margin)
        self.pair_accuracy = tf.keras.metrics.Mean(name="pair_accuracy")

    def call(self, distances: tf.Tensor, labels: tf.Tensor,
             *penalties: tf.Tensor | float) -> tf.Tensor:
        compatible = tf.cast(labels, tf.float32) > 0
        self.pair_accuracy.update_state(
            tf.cast(tf.equal(distances < self.margin / 2, compatible), tf.float32))
        per_pair = tf.where(compatible, tf.square(distances),
                            tf.square(tf.nn.relu(self.margin - distances)))
        for penalty in penalties:
            per_pair = per_pair + penalty
        return tf.nn.compute_average_loss(per_pair)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin}
