"""The BPR ranking task (Rendle et al. 2009; VBPR, TVBPR and DVBPR train with it).

A model scores the positive and the negative item of each triplet (u, i, j) and calls the task::

    self.task = BprRanking()
    ...
    def compute_loss(self, features, training=False):
        x_ui, x_uj = ...                                   # float [batch]
        return self.task(x_ui, x_uj, l2_terms)             # scalar loss

The task owns what every BPR model did by hand before: the unreduced BPR loss
-ln sigma(x_ui - x_uj) (``losses.bpr.bpr_loss``), the model's per-triplet penalty added to it
(its L2 terms: the paper's regulariser is part of each triplet's objective), the mean over the
global batch (``global_batch_mean``, so summed replica gradients stay a mean), and the
``pairwise_accuracy`` metric, the share of triplets ranked right (x_ui > x_uj), which Keras logs
under that name because the task is a layer of the model.

The loss and the metric are float32 whatever the global Keras policy: under a mixed policy the
model's scores may come in float16 or bfloat16 and are cast up first, as the Keras
mixed-precision guide asks of a model's last step.
"""

from __future__ import annotations

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.losses.averaging import global_batch_mean
from tfrec_fashion.losses.bpr import bpr_loss


class BprRanking(tf.keras.layers.Layer):
    """BPR's loss and its pairwise accuracy (see the module docstring).

    Call: ``task(positive_scores, negative_scores, *penalties)`` with scores float [batch] and
    each penalty a per-triplet float [batch] (or a scalar added to every triplet), added in the
    order given; returns the scalar loss.
    """

    def __init__(self, name: str = "bpr_ranking", **kwargs):
        super().__init__(name=name, **{"dtype": "float32", **kwargs})
        self.pairwise_accuracy = tf.keras.metrics.Mean(name="pairwise_accuracy")

    def call(self, positive_scores: tf.Tensor, negative_scores: tf.Tensor,
             *penalties: tf.Tensor | float) -> tf.Tensor:
        positive_scores = tf.cast(positive_scores, tf.float32)
        negative_scores = tf.cast(negative_scores, tf.float32)
        self.pairwise_accuracy.update_state(
            tf.cast(positive_scores > negative_scores, tf.float32))
        per_triplet = bpr_loss(positive_scores, negative_scores)
        for penalty in penalties:  # one at a time, in order: the sums a model wrote by hand
            per_triplet = per_triplet + tf.cast(penalty, tf.float32)
        return global_batch_mean(per_triplet)
