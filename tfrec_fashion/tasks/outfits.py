"""The outfit ranking task of PAN (paper 001, eq. 6-9): a model scores outfits for users and
calls the task with the scores of its two kinds of triplets.

    S1 = {(u_i, O_j, O_k)}: user u_i prefers outfit O_j to O_k          (eq. 5)
    S2 = {(u_m, u_n, O_k)}: outfit O_k is preferred by u_m to u_n        (eq. 5)

    l_BPR = softplus(-(y_ui^j - y_ui^k))                                 eq. 6, per S1 triplet
    l_u   = softplus(-(y_um^k - y_un^k))                                 eq. 7, per S2 triplet
    L     = l_BPR + lambda_user * l_u + lambda_vse * l_vse               eq. 9

Usage inside ``compute_loss``::

    self.task = OutfitRanking(lambda_user=0.1, lambda_vse=0.1)
    return self.task(y_pos, y_neg, y_pos, y_other_user, other_user_mask, vse_per_row)

The paper writes sums over the triplet sets; here each row of a batch is one S1 triplet and one
S2 triplet (its outfit with its own user against another user), and the per-row total is
averaged over the global batch (``global_batch_mean``, so summed replica gradients stay
a mean). An S2 triplet whose "other" user is the same user (no other user in the batch) is masked
out (its term is 0; the mean still divides by the batch size).

``visual_semantic_loss`` is eq. 8 (Han et al. 2017's VSE): with the items' visual vectors v and
textual vectors f, a matching pair must be more similar than every non-matching pair of the batch
by a margin m, in both directions. The paper names d a "distance" but its hinge,
max(0, d(v, f_k) - d(v, f) + m), only makes sense for a similarity (the matching pair's d must be
the larger); we use the cosine similarity, as [13] does.

Metrics (logged by Keras because the task is a layer of the model): ``outfit_accuracy``, the
share of S1 triplets ranked right, and ``user_accuracy``, of unmasked S2 triplets.

May import: tensorflow, losses, metrics.
"""

from __future__ import annotations

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.losses.averaging import global_batch_mean
from tfrec_fashion.losses.bpr import bpr_loss
from tfrec_fashion.serialization import register_serializable


def visual_semantic_loss(visual: tf.Tensor, text: tf.Tensor, margin: float = 0.2,
                         ids: tf.Tensor | None = None) -> tf.Tensor:
    """Eq. 8 per item: float32 [N] of visual and textual vectors, float [N, K] each (row a of
    both describes item a).

    loss_a = mean_{k != a} max(0, s(v_a, f_k) - s(v_a, f_a) + m)
           + mean_{k != a} max(0, s(v_k, f_a) - s(v_a, f_a) + m)

    with s the cosine similarity; ``ids`` (int [N], optional) leaves out the pairs k of the same
    item as a (an item twice in a batch is not its own negative). The paper sums over k; the
    mean keeps the term's size independent of the batch (0 for an item with no negative).
    """
    visual = tf.math.l2_normalize(tf.convert_to_tensor(visual, tf.float32), axis=-1)
    text = tf.math.l2_normalize(tf.convert_to_tensor(text, tf.float32), axis=-1)
    similarity = tf.matmul(visual, text, transpose_b=True)  # [a, k] = s(v_a, f_k)
    matching = tf.linalg.diag_part(similarity)
    n = tf.shape(similarity)[0]
    if ids is None:
        negative = ~tf.eye(n, dtype=tf.bool)
    else:
        ids = tf.reshape(ids, [-1])
        negative = tf.not_equal(ids[:, None], ids[None, :])
    negative = tf.cast(negative, tf.float32)
    text_negatives = tf.nn.relu(similarity - matching[:, None] + margin) * negative
    visual_negatives = tf.nn.relu(similarity - matching[None, :] + margin) * negative
    count = tf.maximum(tf.reduce_sum(negative, axis=1), 1.0)  # the mask is symmetric
    return (tf.reduce_sum(text_negatives, axis=1)
            + tf.reduce_sum(visual_negatives, axis=0)) / count


@register_serializable
class OutfitRanking(tf.keras.layers.Layer):
    """PAN's loss (eq. 9) of S1 and S2 triplet scores and its two accuracies (module docstring).

    Args:
        lambda_user: lambda_1, the weight of the user-specific loss (eq. 7); the paper's 0.1.
        lambda_vse: lambda_2, the weight of the visual-semantic loss (eq. 8); the paper's 0.1.

    Call: ``task(positive_scores, negative_scores, user_scores, other_user_scores,
    other_user_mask=None, vse=None)``, every argument float [batch]: y_ui^j and y_ui^k of S1,
    y_um^k and y_un^k of S2, a 1 / 0 (or bool) mask of the S2 triplets that count, and each
    row's VSE loss (already reduced over its items); returns the scalar loss.
    """

    def __init__(self, lambda_user: float = 0.1, lambda_vse: float = 0.1,
                 name: str = "outfit_ranking", **kwargs):
        super().__init__(name=name, **kwargs)
        if lambda_user < 0 or lambda_vse < 0:
            raise ValueError("lambda_user and lambda_vse must be non-negative. Received: "
                             f"lambda_user={lambda_user}, lambda_vse={lambda_vse}")
        self.lambda_user, self.lambda_vse = float(lambda_user), float(lambda_vse)
        self.outfit_accuracy = tf.keras.metrics.Mean(name="outfit_accuracy")
        self.user_accuracy = tf.keras.metrics.Mean(name="user_accuracy")

    def call(self, positive_scores: tf.Tensor, negative_scores: tf.Tensor,
             user_scores: tf.Tensor, other_user_scores: tf.Tensor,
             other_user_mask: tf.Tensor | None = None,
             vse: tf.Tensor | None = None) -> tf.Tensor:
        self.outfit_accuracy.update_state(
            tf.cast(positive_scores > negative_scores, tf.float32))
        mask = (tf.ones_like(user_scores) if other_user_mask is None
                else tf.cast(other_user_mask, tf.float32))
        self.user_accuracy.update_state(tf.cast(user_scores > other_user_scores, tf.float32),
                                        sample_weight=mask)
        per_row = bpr_loss(positive_scores, negative_scores)                       # eq. 6
        per_row += self.lambda_user * mask * bpr_loss(user_scores, other_user_scores)  # eq. 7
        if vse is not None:
            per_row += self.lambda_vse * vse                                        # eq. 8
        return global_batch_mean(per_row)                                           # eq. 9

    def get_config(self) -> dict:
        return {**super().get_config(), "lambda_user": self.lambda_user,
                "lambda_vse": self.lambda_vse}
