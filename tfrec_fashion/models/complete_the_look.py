"""Complete the look (paper 004, section 2.2): a style embedding in which items that are worn
together are near, trained with the triplet loss on complete-the-look triplets.

    content -> backbone -> fc -> batch norm -> ReLU -> dropout -> fc -> L2-normalise -> s in R^128

(section 2.2.3: "two additional FC-layers on top with a batch normalization layer in between and
a dropout layer", 128-d). The content is what the recipe gives each item: a feature vector (the
planted world's one-hot attributes, EfficientNet-Lite0's pooled features computed once with its
ImageNet weights, frozen) when ``backbone is None``, else the item's image through ``backbone``
(a small CNN trained end to end; the paper fine-tunes ResNet-18).

Loss (``tasks.triplets.StyleTriplets``): max(||s_a - s_p||^2 - ||s_a - s_n||^2 + margin, 0),
margin 0.2, on (anchor, positive, negative) item triplets (``data.samplers.ctl_triplets``: the
positive of another category from the anchor's outfit, the negative of the positive's category
from another outfit). The three items of a batch go through the network together, so batch norm
normalises over all 3B items.

Compatibility of two items is the cosine of their style embeddings (a dot product: they are unit
vectors), so complementary items are served by an inner-product index over ``item_style_
embeddings()``, and a new product's image by ``style_embeddings(content)``.

``batch_norm=False`` is the paper's ablation: "batch normalization was essential ... as it
prevented the model from getting trapped into a trivial solution - making the embedding of
anchor, positive and negative identical". Whether it does here is measured by the spread of the
embeddings (the mean pairwise cosine of the catalogue, ``evaluation.complete_the_look``).

Departures from the paper: ReLU after batch norm (the paper names no activation; without one the
two fc layers are one linear map); the style vectors are L2-normalised inside the model, not only
when scored, so the margin has a fixed meaning (cos(a, p) - cos(a, n) >= margin / 2); dropout 0.3
by default (the paper does not give its rate).

The item content is a data table (``ItemTable``): set it again on a model rebuilt from its
config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.models.base import RecommenderModel
from tfrec_fashion.models.item_table import ItemTable
from tfrec_fashion.serialization import register_serializable
from tfrec_fashion.tasks.triplets import StyleTriplets

_EMBED_BATCH = 1024


@register_serializable
class CompleteTheLook(RecommenderModel):
    """The complete-the-look compatibility model: item content -> unit 128-d style vector
    (module docstring).

    Args:
        n_items: number of item indices (rows of the content table).
        content_shape: one item's content: (F,) features when ``backbone is None``, else the
            backbone's input, e.g. (32, 32, 3) images in [0, 1].
        backbone: a Keras model content [B, *content_shape] -> features [B, ...] (flattened),
            or its ``tf.keras.layers.serialize`` dict; None = the content is the features.
        hidden_dim: width of the first fc layer.
        embedding_dim: the style embedding's size (the paper: 128).
        batch_norm: batch norm between the fc layers (False: the paper's ablation).
        dropout_rate: dropout before the last fc layer, training only.
        margin: the triplet loss's margin (the paper: 0.2).
        l2: L2 weight on both fc kernels.
        item_content: optional float [n_items, *content_shape]; else ``set_item_content``.

    Inputs to ``fit``: {"anchor", "positive", "negative"}, int item indices [B] each
    (``data.pipelines.ctl_triplet_dataset``).

    Example:

        model = CompleteTheLook(n_items, (n_features,), item_content=features)
        model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
        model.fit(ctl_triplet_dataset(train_outfits, items.category, 64), epochs=10)
        model(items)                               # [B, 128] unit style vectors
        model.item_style_embeddings()              # [n_items, 128], the index's vectors
    """

    def __init__(self, n_items: int, content_shape: Sequence[int],
                 backbone: tf.keras.Model | dict | None = None, hidden_dim: int = 256,
                 embedding_dim: int = 128, batch_norm: bool = True, dropout_rate: float = 0.3,
                 margin: float = 0.2, l2: float = 0.0, item_content: Any = None,
                 name: str = "complete_the_look", **kwargs):
        super().__init__(name=name, **kwargs)
        for key, value in (("n_items", n_items), ("hidden_dim", hidden_dim),
                           ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{key} must be a positive integer. Received: {key}={value!r}")
        if not 0 <= dropout_rate < 1 or l2 < 0:
            raise ValueError(f"dropout_rate must be in [0, 1) and l2 >= 0. Received: "
                             f"dropout_rate={dropout_rate}, l2={l2}")
        if isinstance(backbone, dict):
            backbone = tf.keras.layers.deserialize(backbone)
        self.n_items = int(n_items)
        self.content_shape = tuple(int(size) for size in content_shape)
        self.backbone, self.has_backbone = backbone, backbone is not None
        self.hidden_dim, self.embedding_dim = int(hidden_dim), int(embedding_dim)
        self.batch_norm, self.dropout_rate = bool(batch_norm), float(dropout_rate)
        self.margin, self.l2 = float(margin), float(l2)
        regularizer = tf.keras.regularizers.l2(l2) if l2 else None

        # === Layers (section 2.2.3) ===
        self.fc_hidden = tf.keras.layers.Dense(hidden_dim, name="fc_hidden",
                                               kernel_regularizer=regularizer)
        self.normalization = (tf.keras.layers.BatchNormalization(name="batch_norm")
                              if self.batch_norm else None)
        self.dropout = tf.keras.layers.Dropout(dropout_rate, name="dropout")
        self.fc_style = tf.keras.layers.Dense(embedding_dim, name="fc_style",
                                              kernel_regularizer=regularizer)
        self.style_embeddings(tf.zeros((1, *self.content_shape)))  # every weight exists now
        self.task = StyleTriplets(margin)
        self.built = True  # a resumed run restores the weights before any call
        self._item_content = ItemTable("item_content", setter="set_item_content")
        if item_content is not None:
            self.set_item_content(item_content)

    # ------------------------------------------------------------------ data table
    def set_item_content(self, content: Any) -> None:
        """Sets the content table, float [n_items, *content_shape], rows in item order."""
        self._item_content.set(content, (self.n_items, *self.content_shape),
                               self.distribute_strategy)

    # ------------------------------------------------------------------ the style embedding
    def style_embeddings(self, content: Any, training: bool = False) -> tf.Tensor:
        """Unit style vectors of any items' content: float32 [N, embedding_dim] of content
        [N, *content_shape] (features, or images in [0, 1] with a backbone). Graph-safe: the
        export's image -> style function."""
        features = tf.convert_to_tensor(content, tf.float32)
        if self.has_backbone:
            features = self.backbone(features, training=training)
        hidden = self.fc_hidden(tf.reshape(features, [tf.shape(features)[0], -1]))
        if self.normalization is not None:
            hidden = self.normalization(hidden, training=training)
        hidden = self.dropout(tf.nn.relu(hidden), training=training)
        return tf.math.l2_normalize(self.fc_style(hidden), axis=-1)

    def call(self, items) -> tf.Tensor:
        """Unit style vectors of item indices [B]: float32 [B, embedding_dim]."""
        content = tf.gather(self._item_content.get(self.name), tf.cast(items, tf.int32))
        return self.style_embeddings(content)

    def item_style_embeddings(self) -> tf.Tensor:
        """Every item's unit style vector, float32 [n_items, embedding_dim], in item order: the
        complementary index's vectors."""
        table = self._item_content.get(self.name)
        return tf.concat([self.style_embeddings(table[start:start + _EMBED_BATCH])
                          for start in range(0, self.n_items, _EMBED_BATCH)], axis=0)

    def compatibility(self, item_a: Any, item_b: Any) -> tf.Tensor:
        """cos(s_a, s_b) of item index pairs [B]: float32 [B] (the paper's compatibility)."""
        return tf.reduce_sum(self(item_a) * self(item_b), axis=-1)

    # ------------------------------------------------------------------ training
    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        items = tf.concat([tf.cast(inputs[key], tf.int32)
                           for key in ("anchor", "positive", "negative")], axis=0)
        content = tf.gather(self._item_content.get(self.name), items)
        anchor, positive, negative = tf.split(self.style_embeddings(content, training), 3)
        return self.task(anchor, positive, negative)

    def get_config(self) -> dict:
        # The item content is data, not configuration: set it again after from_config.
        return {"n_items": self.n_items, "content_shape": list(self.content_shape),
                "backbone": (tf.keras.layers.serialize(self.backbone) if self.has_backbone
                             else None),
                "hidden_dim": self.hidden_dim, "embedding_dim": self.embedding_dim,
                "batch_norm": self.batch_norm, "dropout_rate": self.dropout_rate,
                "margin": self.margin, "l2": self.l2, "name": self.name}
