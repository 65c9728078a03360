"""Bayesian Personalized Ranking loss (Rendle et al. 2009; DVBPR eq. 4-5) and its pairwise base.

BPR maximises sum ln sigma(x_uij) over triplets (u, i, j), with x_uij = x_ui - x_uj (DVBPR eq. 4);
as a loss to minimise that is -ln sigma(x_ui - x_uj) = softplus(x_uj - x_ui), which stays finite
and has finite gradients for any margin (ln(sigmoid(m)) underflows to -inf for m below ~ -88 in
float32).

Two ways to use it (the L2 terms of eq. 5 are the model's business, not the loss's):

    loss = BprLoss()(x_ui, x_uj)                    # Keras loss: batch mean (or sample_weight)
    per_triplet = bpr_loss(x_ui, x_uj)              # [batch], unreduced, inside compute_loss
    loss = tf.nn.compute_average_loss(per_triplet)  # mean that stays right under tf.distribute

Keras' ``Loss.__call__(y_true, y_pred)`` slots hold the positive and the negative scores here, as
keras-rs's pairwise losses reuse them for labels and logits. A Keras loss with the default
(batch-mean) reduction refuses to run inside a ``tf.distribute`` strategy outside ``compile``;
a ``tfrs.Model.compute_loss`` that may run under one should reduce ``bpr_loss`` itself as above,
or use ``BprLoss(reduction=tf.keras.losses.Reduction.NONE)``.
"""

from __future__ import annotations

import abc

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.serialization import register_serializable


class PairwiseLoss(tf.keras.losses.Loss, abc.ABC):
    """Base of losses on a score margin: loss(x_pos, x_neg) = reduce(pairwise_loss(x_pos - x_neg)).

    Subclasses fill in ``pairwise_loss`` only (keras-rs ``PairwiseLoss`` pattern).

    Call: ``loss(positive_scores, negative_scores, sample_weight=None)``, scores float [batch]
    (any matching shapes); reduced by ``reduction`` (default: mean over the elements).
    """

    @abc.abstractmethod
    def pairwise_loss(self, margin: tf.Tensor) -> tf.Tensor:
        """Elementwise loss of margin = x_pos - x_neg (same shape; larger margin = better)."""

    def call(self, positive_scores: tf.Tensor, negative_scores: tf.Tensor) -> tf.Tensor:
        positive = tf.convert_to_tensor(positive_scores)
        negative = tf.cast(negative_scores, positive.dtype)
        return self.pairwise_loss(positive - negative)


@register_serializable
class BprLoss(PairwiseLoss):
    """BPR: -ln sigma(x_ui - x_uj), computed as softplus(-(x_ui - x_uj)) (DVBPR eq. 5, no L2).

    Args:
        reduction: a ``tf.keras.losses.Reduction`` (default: mean over the batch).
        name: the loss's name.

    Example:
    >>> round(float(BprLoss()(tf.constant([0.0]), tf.constant([0.0]))), 6)  # ln 2
    0.693147
    """

    def __init__(self, reduction: str = tf.keras.losses.Reduction.AUTO, name: str = "bpr_loss"):
        super().__init__(reduction=reduction, name=name)

    def pairwise_loss(self, margin: tf.Tensor) -> tf.Tensor:
        return tf.nn.softplus(-margin)


def bpr_loss(positive_scores: tf.Tensor, negative_scores: tf.Tensor) -> tf.Tensor:
    """Unreduced BPR loss softplus(x_uj - x_ui), float [batch]: ``BprLoss`` before reduction."""
    positive = tf.convert_to_tensor(positive_scores)
    return tf.nn.softplus(tf.cast(negative_scores, positive.dtype) - positive)
