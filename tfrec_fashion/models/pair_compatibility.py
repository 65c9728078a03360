"""Pair compatibility on item features, not personalised: the compatibility head's minimal model.

One embedding network g (two dense layers) maps an item's features f_i to g(f_i); a pair's
distance is d(a, b) = ||g(f_a) - g(f_b)||, its score -d (higher = more compatible), trained with
the contrastive loss on +1 / -1 pair votes (``tasks.pairs.ContrastivePairs``). It is PSA-Net
(paper 000, section 3.2) with the customer taken out: one subspace and no attention, so it
learns what most customers find compatible. PSA-Net's personalised subspace attention is the
next step (issue 18); this model is its "global" baseline and the reference for the serving
head (``contract.COMPATIBILITY``), which scores any (customer, item, partner) function.

Training batches are integer-only, {"item_a", "item_b", "label"}; the model looks features up in
its item table (``models.item_table.ItemTable``: data, not a parameter; set it again on a model
rebuilt from its config).
"""

from __future__ import annotations

from typing import Any

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.models.base import RecommenderModel
from tfrec_fashion.models.item_table import ItemTable
from tfrec_fashion.serialization import register_serializable
from tfrec_fashion.tasks.pairs import ContrastivePairs

_EPSILON = 1e-9  # keeps the distance's gradient finite for identical embeddings


def embedding_distance(embedding_a: tf.Tensor, embedding_b: tf.Tensor) -> tf.Tensor:
    """||a - b|| over the last axis: float [B] of [B, D] each (finite gradient at a == b)."""
    return tf.sqrt(tf.reduce_sum(tf.square(embedding_a - embedding_b), axis=-1) + _EPSILON)


def item_feature_network(feature_dim: int, hidden_dim: int, output_dim: int, l2: float = 0.0,
                         name: str = "item_embedding") -> tf.keras.Sequential:
    """g, the item-features network: float [B, F] -> [B, output_dim] through one ReLU layer of
    ``hidden_dim``, built, with an L2 weight ``l2`` on both kernels (PSA-Net's features
    backbone too)."""
    regularizer = tf.keras.regularizers.l2(l2) if l2 else None
    network = tf.keras.Sequential([
        tf.keras.layers.Dense(hidden_dim, activation="relu", kernel_regularizer=regularizer),
        tf.keras.layers.Dense(output_dim, kernel_regularizer=regularizer),
    ], name=name)
    network.build([None, feature_dim])
    return network


@register_serializable
class PairCompatibility(RecommenderModel):
    """Contrastive pair compatibility of items from their features (see the module docstring).

    Args:
        n_items: number of item indices (rows of the feature table).
        feature_dim: F, the size of an item's features.
        embedding_dim: the size of g(f).
        hidden_dim: the hidden layer's width (ReLU).
        margin: the contrastive loss's margin m.
        l2: L2 weight on both kernels (added to the loss by Keras).
        item_features: optional float [n_items, F]; else ``set_item_features``.

    Inputs to ``fit``: dict batches {"item_a", "item_b"} int32 [batch] and "label" [batch] +-1.

    Example:

        model = PairCompatibility(n_items=100, feature_dim=8, item_features=features)
        model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
        model.fit(pairs.batch(64), epochs=5)
        model.pair_scores(features[:3], features[3:6])   # [3], higher = more compatible
    """

    def __init__(self, n_items: int, feature_dim: int, embedding_dim: int = 16,
                 hidden_dim: int = 32, margin: float = 1.0, l2: float = 0.0,
                 item_features: Any = None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("n_items", n_items), ("feature_dim", feature_dim),
                            ("embedding_dim", embedding_dim), ("hidden_dim", hidden_dim)):
            if value < 1:
                raise ValueError(f"{name} must be positive. Received: {name}={value}")
        if l2 < 0:
            raise ValueError(f"l2 must be non-negative. Received: l2={l2}")
        self.n_items, self.feature_dim = int(n_items), int(feature_dim)
        self.embedding_dim, self.hidden_dim = int(embedding_dim), int(hidden_dim)
        self.margin, self.l2 = float(margin), float(l2)
        self.embedding = item_feature_network(feature_dim, hidden_dim, embedding_dim, l2)
        self.task = ContrastivePairs(margin)
        self.built = True  # every weight exists: a resumed run restores them before any call
        self._item_features = ItemTable("item_features", setter="set_item_features")
        if item_features is not None:
            self.set_item_features(item_features)

    def set_item_features(self, features: Any) -> None:
        self._item_features.set(features, (self.n_items, self.feature_dim),
                                self.distribute_strategy)

    def distances(self, features_a: tf.Tensor, features_b: tf.Tensor) -> tf.Tensor:
        """||g(f_a) - g(f_b)||: float [B] of features [B, F] each."""
        return embedding_distance(self.embedding(features_a), self.embedding(features_b))

    def pair_scores(self, features_a: Any, features_b: Any) -> tf.Tensor:
        """Each pair's score, -d: float [B], higher = more compatible."""
        return -self.distances(tf.convert_to_tensor(features_a, tf.float32),
                               tf.convert_to_tensor(features_b, tf.float32))

    def _features(self, items: tf.Tensor) -> tf.Tensor:
        return tf.gather(self._item_features.get(self.name), items)

    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        distances = self.distances(self._features(inputs["item_a"]),
                                   self._features(inputs["item_b"]))
        return self.task(distances, inputs["label"])

    def call(self, inputs) -> tf.Tensor:
        """Scores of {"item_a", "item_b"} index pairs: float [B]."""
        return -self.distances(self._features(inputs["item_a"]),
                               self._features(inputs["item_b"]))

    def get_config(self) -> dict:
        return {"n_items": self.n_items, "feature_dim": self.feature_dim,
                "embedding_dim": self.embedding_dim, "hidden_dim": self.hidden_dim,
                "margin": self.margin, "l2": self.l2, "name": self.name}
