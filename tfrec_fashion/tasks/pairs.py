"""The pair tasks of PSA-Net (paper 000): a model embeds the items of a rated pair and calls the
task with their distance.

**ContrastivePairs** (Hadsell, Chopra and LeCun 2006; PSA-Net's loss, section 3)::

    self.task = ContrastivePairs(margin=1.0)
    ...
    def compute_loss(self, inputs, training=False):
        distance = ...                                  # float [batch], >= 0
        return self.task(distance, inputs["label"])     # labels +1 / -1

Per pair: d^2 for a compatible pair (+1), max(0, margin - d)^2 for an incompatible one (-1);
the mean over the global batch (``global_batch_mean``, so summed replica gradients stay
a mean). The accuracy metric (``task.accuracy``) is the share of pairs on the right side of
margin / 2, the distance midway between where the loss pulls the two classes; Keras logs it as
``pair_accuracy`` because the task is a layer of the model.

**TripletPairs** (the paper's ablation of section 7.2.2): votes are on pairs, so the third image
c of a triplet is drawn uniformly at random from all the images, and the vote says which side of
it the partner must fall::

    loss(a, b, c, y) = max(0, y * (d(a, b) - d(a, c)) + margin)        y in {+1, -1}

a compatible partner b (+1) must be nearer the anchor a than the random c by the margin, an
incompatible one (-1) farther; averaged over the global batch as above. Its accuracy (logged as
``triplet_accuracy``) is the share of triplets on the vote's side, y * (d(a, b) - d(a, c)) < 0.
"""

from __future__ import annotations

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.losses.averaging import global_batch_mean


class MarginTask(tf.keras.layers.Layer):
    """A pair task with a margin and an accuracy metric; a subclass names the metric
    (``ACCURACY``) and writes ``call``.

    Args:
        margin: m > 0 (what it means is the subclass's).
    """

    ACCURACY = "accuracy"  # the metric's name in Keras' logs

    def __init__(self, margin: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not margin > 0:
            raise ValueError(f"margin must be positive. Received: margin={margin}")
        self.margin = float(margin)
        self.accuracy = tf.keras.metrics.Mean(name=self.ACCURACY)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin}


class ContrastivePairs(MarginTask):
    """The contrastive loss of labelled pairs and its accuracy (see the module docstring).

    Args:
        margin: m > 0, the distance beyond which an incompatible pair costs nothing.

    Call: ``task(distances, labels, *penalties)`` with distances float [batch] (>= 0), labels
    [batch] in {+1, -1} (any numeric dtype) and each penalty a per-pair float [batch] or a
    scalar; returns the scalar loss.
    """

    ACCURACY = "pair_accuracy"

    def __init__(self, margin: float = 1.0, name: str = "contrastive_pairs", **kwargs):
        super().__init__(margin, name=name, **kwargs)

    def call(self, distances: tf.Tensor, labels: tf.Tensor,
             *penalties: tf.Tensor | float) -> tf.Tensor:
        compatible = tf.cast(labels, tf.float32) > 0
        self.accuracy.update_state(
            tf.cast(tf.equal(distances < self.margin / 2, compatible), tf.float32))
        per_pair = tf.where(compatible, tf.square(distances),
                            tf.square(tf.nn.relu(self.margin - distances)))
        for penalty in penalties:
            per_pair = per_pair + penalty
        return global_batch_mean(per_pair)


class TripletPairs(MarginTask):
    """The triplet loss of labelled pairs against a random third image (see the module
    docstring).

    Args:
        margin: m > 0, how much nearer (+1) or farther (-1) than the third image the partner
            must be before the triplet costs nothing.

    Call: ``task(distances, third_distances, labels)`` with distances d(a, b) and
    third_distances d(a, c), float [batch] (>= 0), labels [batch] in {+1, -1}; returns the
    scalar loss.
    """

    ACCURACY = "triplet_accuracy"

    def __init__(self, margin: float = 1.0, name: str = "triplet_pairs", **kwargs):
        super().__init__(margin, name=name, **kwargs)

    def call(self, distances: tf.Tensor, third_distances: tf.Tensor,
             labels: tf.Tensor) -> tf.Tensor:
        gap = tf.sign(tf.cast(labels, tf.float32)) * (distances - third_distances)
        self.accuracy.update_state(tf.cast(gap < 0, tf.float32))
        return global_batch_mean(tf.nn.relu(gap + self.margin))
