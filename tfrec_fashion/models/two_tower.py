"""A minimal TFRS two-tower retrieval model over user and item ids.

The smallest honest retrieval model: a user embedding and an item embedding, scored by their
inner product and trained with TFRS's in-batch softmax ``Retrieval`` task. It is the baseline the
training harness is exercised with; the fashion models (StyNet, VBPR, ...) add features to the
towers.
"""

from __future__ import annotations

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec_fashion.losses.averaging import collective_device
from tfrec_fashion.models.base import RecommenderModel
from tfrec_fashion.serialization import register_serializable


@register_serializable
class TwoTowerRetrieval(RecommenderModel):
    """User-id and item-id towers scored by inner product, trained with in-batch softmax.

    Args:
        n_users: number of user indices (inputs are int indices in [0, n_users)).
        n_items: number of item indices.
        embedding_dim: size of both embeddings.
        l2: L2 penalty on the embeddings.
        temperature: softmax temperature of the retrieval loss (None = 1).

    Inputs to ``fit``: dict batches {"user": int32 [batch], "item": int32 [batch]} of positive
    pairs, optionally "item_probability": float32 [batch], the item's share of the training
    pairs; the other items of the batch are the negatives.

    Example:
    >>> model = TwoTowerRetrieval(n_users=10, n_items=20, embedding_dim=4)
    >>> model.compile(tf.keras.optimizers.Adam(0.1))
    >>> scores = model.score(tf.constant([0, 1]))  # [2, 20]
    """

    def __init__(self, n_users: int, n_items: int, embedding_dim: int = 32, l2: float = 0.0,
                 temperature: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_users = n_users
        self.n_items = n_items
        self.embedding_dim = embedding_dim
        self.l2 = l2
        self.temperature = temperature
        regularizer = tf.keras.regularizers.l2(l2) if l2 else None
        # === Towers ===
        self.user_tower = tf.keras.layers.Embedding(
            n_users, embedding_dim, embeddings_regularizer=regularizer, name="user_embedding")
        self.item_tower = tf.keras.layers.Embedding(
            n_items, embedding_dim, embeddings_regularizer=regularizer, name="item_embedding")
        # === Task ===
        self.task = tfrs.tasks.Retrieval(temperature=temperature)
        # Every variable exists from construction, so checkpoints (BackupAndRestore included)
        # restore into a model that has not seen data yet.
        self.user_tower.build((None,))
        self.item_tower.build((None,))
        self.built = True

    def compute_loss(self, features, training: bool = False) -> tf.Tensor:
        users = self.user_tower(features["user"])
        # The negatives are the whole global batch's items on every replica (see
        # ``global_candidates``), not this replica's share: the loss is the one-replica loss.
        items, item_ids, probability = global_candidates(
            self.item_tower(features["item"]), features["item"], features.get("item_probability"))
        # Accidental hits (the batch's own positive repeated as a negative) are removed, and
        # when given, each item's sampling probability corrects the in-batch softmax for
        # popular items appearing as negatives more often (logQ correction, Yi et al. 2019).
        return self.task(users, items, candidate_ids=item_ids,
                         candidate_sampling_probability=probability,
                         compute_metrics=not training)

    def call(self, users: tf.Tensor) -> tf.Tensor:
        """Returns the user vectors [batch, embedding_dim] for int user indices [batch]."""
        return self.user_tower(users)

    def item_vectors(self) -> tf.Tensor:
        """Returns all item vectors [n_items, embedding_dim]."""
        return self.item_tower.embeddings

    def user_vectors(self) -> tf.Tensor:
        """Returns all user vectors [n_users, embedding_dim]."""
        return self.user_tower.embeddings

    def score(self, users: tf.Tensor) -> tf.Tensor:
        """Returns x_ui for every item: [batch, n_items]."""
        return tf.matmul(self.user_tower(users), self.item_vectors(), transpose_b=True)

    def get_config(self) -> dict:
        return {"n_users": self.n_users, "n_items": self.n_items,
                "embedding_dim": self.embedding_dim, "l2": self.l2,
                "temperature": self.temperature, "name": self.name}


def global_candidates(*candidates: tf.Tensor | None) -> list[tf.Tensor | None]:
    """The in-batch candidates of every replica, this replica's own first (None stays None).

    Under a distribution strategy each replica sees its share of the global batch; TFRS's
    ``Retrieval`` task would take only that share as the negatives (B/N candidates on N
    replicas instead of B), a different and easier loss than one replica's, which costs
    retrieval quality as replicas are added (tensorflow/recommenders #710). Gathered from all
    replicas (``ReplicaContext.all_gather``, whose gradient returns each replica its rows), every
    replica scores its queries against the same B candidates as one replica would. The rows
    are rolled so that this replica's candidates come first: the task takes query k's positive
    to be candidate k, and the softmax does not depend on the order of the others. With one
    replica the tensors are returned as they are.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return list(candidates)
    present = [tensor for tensor in candidates if tensor is not None]
    with collective_device():
        sizes = context.all_gather(tf.shape(present[0])[:1], axis=0)
        offset = tf.reduce_sum(sizes[:context.replica_id_in_sync_group])
        # One gather per tensor: a batched gather packs its tensors into one, of one dtype.
        gathered = iter([context.all_gather(tf.identity(tensor), axis=0) for tensor in present])
    return [None if tensor is None else tf.roll(next(gathered), -offset, axis=0)
            for tensor in candidates]
