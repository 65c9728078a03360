"""The complete-the-look task (paper 004, section 2.2.4): a model embeds the anchor, the positive
and the negative item of each triplet and calls the task with the three embeddings::

    self.task = StyleTriplets(margin=0.2)
    ...
    def compute_loss(self, inputs, training=False):
        anchor, positive, negative = ...                 # float [batch, d] each
        return self.task(anchor, positive, negative)     # scalar loss

The loss is ``losses.triplet.triplet_loss`` (squared Euclidean distances, the paper's formula),
averaged over the global batch (``global_batch_mean``, so summed replica gradients stay
a mean). The accuracy metric, logged as ``triplet_accuracy``, is the share of triplets whose
positive is nearer the anchor than the negative, d(a, p) < d(a, n): on unit vectors the paper's
evaluation, sim(a, p) > sim(a, n).
"""

from __future__ import annotations

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.losses.averaging import global_batch_mean
from tfrec_fashion.losses.triplet import squared_distance, triplet_loss
from tfrec_fashion.tasks.pairs import MarginTask


class StyleTriplets(MarginTask):
    """The triplet loss of (anchor, positive, negative) embeddings and its accuracy (module
    docstring).

    Args:
        margin: alpha > 0 (the paper: 0.2).

    Call: ``task(anchor, positive, negative)``, embeddings float [batch, d] each; returns the
    scalar loss.
    """

    ACCURACY = "triplet_accuracy"

    def __init__(self, margin: float = 0.2, name: str = "style_triplets", **kwargs):
        super().__init__(margin, name=name, **kwargs)

    def call(self, anchor: tf.Tensor, positive: tf.Tensor, negative: tf.Tensor) -> tf.Tensor:
        self.accuracy.update_state(tf.cast(
            squared_distance(anchor, positive) < squared_distance(anchor, negative), tf.float32))
        return global_batch_mean(triplet_loss(anchor, positive, negative, self.margin))
