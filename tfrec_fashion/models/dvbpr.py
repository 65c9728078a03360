"""DVBPR (Kang et al. 2017, paper 003, section III-A/B): BPR on x_ui = theta_u . Phi(X_i), Phi a CNN
trained end to end from the item images.

    x_ui  = theta_u^T Phi(X_i)                           eq. 6 (eq. 3 less alpha and beta_u, which
                                                         cancel in x_uij; no beta_i, no gamma_i)
    x_uij = x_ui - x_uj                                  eq. 4
    loss  = mean over triplets (u, i, j) of
            -ln sigma(x_uij) + lambda_theta / 2 ||theta_u||^2   +  Phi's weight decay     eq. 5

Phi is any image backbone (KerasHub style), by default thought of as ``layers.cnn_f.CNNF``; one
instance scores both images of a triplet (Siamese weight sharing), in one call on the stacked
batch. lambda_theta / 2 ||theta_u||^2 per triplet is the authors' ``tf.nn.l2_loss`` of the batch's
theta_u beside their batch-summed BPR loss, divided by the batch size like the BPR term;
lambda_theta = 1 is the paper's. Phi is regularised by its own kernel regularisers and dropout
(``CNNF(weight_decay=...)``), which ``tfrs.Model`` adds to the loss.

The input pipeline stays integer-only: training batches are {"user", "pos_item", "neg_item"} int32
(``data.pipelines.bpr_dataset``) and the model looks the images up in its item image table,
float32 [n_items, H, W, 3] in [0, 1] (``data.pipelines.image_table``), given at construction or
with ``set_item_images``. The table is data, not a parameter: it is neither in ``get_config`` nor
in checkpoints (``save_weights`` / BackupAndRestore save the learned weights only); set it again
on a model rebuilt from its config.

Every score is an inner product of ``user_vectors()`` and ``item_vectors()``, so one retrieval
index serves DVBPR like the rest of the family, and ``embed_items`` gives a vector to an item
never seen in training from its image alone (cold start).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec_fashion.models.base import RecommenderModel
from tfrec_fashion.tasks.bpr import BprRanking
from tfrec_fashion.models.item_table import ItemTable
from tfrec_fashion.serialization import register_serializable


@register_serializable
class DVBPR(RecommenderModel):
    """Deep visually-aware BPR: user vectors theta_u against a CNN's item vectors Phi(X_i).

    Args:
        n_users: number of user indices (inputs are int indices in [0, n_users)).
        n_items: number of item indices (rows of the image table).
        backbone: Phi, a Keras model mapping float32 [batch, H, W, 3] images in [0, 1] to
            [batch, K] (e.g. ``CNNF``); or its ``tf.keras.layers.serialize`` dict.
        lambda_theta: L2 weight on theta_u, as lambda_theta / 2 ||theta_u||^2 per triplet
            (paper: 1).
        item_images: optional float [n_items, H, W, 3] in [0, 1]; else ``set_item_images``.
        image_shape: (H, W, 3); default the backbone's input shape (needed for a backbone that
            has not been built).

    Inputs to ``fit``: dict batches {"user", "pos_item", "neg_item"}, each int32 [batch].

    Example:

        phi = CNNF.from_preset("small_cnn", output_dim=8)
        model = DVBPR(n_users=40, n_items=48, backbone=phi, item_images=images)
        model.compile(tf.keras.optimizers.Adam(1e-3))
        model.fit(bpr_dataset(sampler, batch_size=128), epochs=10)
        scores = model.score(tf.constant([0, 1]))  # [2, 48]
    """

    def __init__(self, n_users: int, n_items: int, backbone: tf.keras.Model | dict,
                 lambda_theta: float = 1.0, item_images: Any = None,
                 image_shape: Sequence[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        for value, name in ((n_users, "n_users"), (n_items, "n_items")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        if lambda_theta < 0:
            raise ValueError(f"`lambda_theta` must be >= 0. Received: lambda_theta={lambda_theta}")
        if isinstance(backbone, dict):
            backbone = tf.keras.layers.deserialize(backbone)
        self.n_users = n_users
        self.n_items = n_items
        self.lambda_theta = lambda_theta
        self.image_shape = _image_shape(backbone, image_shape)
        # === Layers ===
        self.backbone = backbone  # Phi: the one network both images of a triplet go through
        # Calling Phi once creates its variables (whatever kind of backbone) and gives K.
        phi = backbone(tf.zeros((1, *self.image_shape)), training=False)
        self.embedding_dim = int(phi.shape[-1])
        # theta_u, initialised U(0, 0.01) as in the authors' code.
        self.user_embedding = tf.keras.layers.Embedding(
            n_users, self.embedding_dim,
            embeddings_initializer=tf.keras.initializers.RandomUniform(0.0, 0.01), name="theta_u")
        self.user_embedding.build((None,))
        # BPR's loss and its pairwise accuracy (the training AUC estimate BPR optimises).
        self.task = BprRanking()
        self._item_table = ItemTable("item_images", setter="set_item_images")
        if item_images is not None:
            self.set_item_images(item_images)
        # Every variable exists from construction, so checkpoints (BackupAndRestore included)
        # restore into a model that has not seen data yet.
        self.built = True

    # ------------------------------------------------------------------ item images
    def set_item_images(self, images: Any) -> None:
        """Sets the image table: float [n_items, H, W, 3] in [0, 1], rows in item order.

        Later calls replace the values in place (traced training functions see them).
        """
        images = tf.convert_to_tensor(images)
        if not images.dtype.is_floating:
            raise ValueError("item images must be float in [0, 1] (data.pipelines.image_table). "
                             f"Received: dtype={images.dtype.name}")
        expected = (self.n_items, *self.image_shape)
        if tuple(images.shape) != expected:
            raise ValueError(f"item images must have shape {expected} (n_items, *image_shape). "
                             f"Received: shape={tuple(images.shape)}")
        images = tf.cast(images, tf.float32)
        low, high = float(tf.reduce_min(images)), float(tf.reduce_max(images))
        if low < 0.0 or high > 1.0:
            raise ValueError("item images must lie in [0, 1]. "
                             f"Received: min={low:.4g}, max={high:.4g}")
        self._item_table.assign(images, self.distribute_strategy)

    @property
    def item_images(self) -> tf.Variable:
        """The image table, float32 [n_items, H, W, 3] in [0, 1]."""
        return self._item_table.get(self.name)

    # ------------------------------------------------------------------ training
    def compute_loss(self, features, training: bool = False) -> tf.Tensor:
        theta_u = self.user_embedding(features["user"])  # [batch, K]
        # Siamese weight sharing: X_i and X_j go through the same Phi, stacked in one call.
        items = tf.concat([features["pos_item"], features["neg_item"]], axis=0)
        phi = self.backbone(tf.gather(self.item_images, items), training=training)
        phi_i, phi_j = tf.split(phi, 2)
        x_ui = tf.reduce_sum(theta_u * phi_i, axis=-1)  # eq. 6
        x_uj = tf.reduce_sum(theta_u * phi_j, axis=-1)
        # eq. 5 per triplet; Phi's weight decay comes in through self.losses (tfrs.Model adds it).
        return self.task(x_ui, x_uj,
                         self.lambda_theta * 0.5 * tf.reduce_sum(tf.square(theta_u), axis=-1))

    # ------------------------------------------------------------------ inference
    def call(self, users: tf.Tensor) -> tf.Tensor:
        """Returns theta_u [batch, K] for int user indices [batch]."""
        return self.user_embedding(users)

    def user_vectors(self) -> tf.Tensor:
        """Returns every theta_u: [n_users, K]."""
        return tf.convert_to_tensor(self.user_embedding.embeddings)

    def embed_items(self, images: Any) -> tf.Tensor:
        """Phi(X) in inference mode: float32 [batch, H, W, 3] in [0, 1] -> [batch, K].

        Works for any image, so a new item (never seen in training) gets its vector from its
        image alone.
        """
        images = tf.convert_to_tensor(images, tf.float32)
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"images must have shape (batch, *{self.image_shape}). "
                             f"Received: shape={tuple(images.shape)}")
        return self.backbone(images, training=False)

    def item_vectors(self, batch_size: int = 256) -> tf.Tensor:
        """Returns Phi(X_i) of every item: [n_items, K], ``batch_size`` images at a time."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer. Received: "
                             f"batch_size={batch_size!r}")
        images = self.item_images
        return tf.concat([self.embed_items(images[start:start + batch_size])
                          for start in range(0, self.n_items, batch_size)], axis=0)

    def score(self, users: tf.Tensor, item_vectors: tf.Tensor | None = None) -> tf.Tensor:
        """Returns x_ui for every item: [batch, n_items] (``item_vectors`` reused when given)."""
        items = self.item_vectors() if item_vectors is None else item_vectors
        return tf.matmul(self.user_embedding(users), items, transpose_b=True)

    def get_config(self) -> dict:
        # The image table is data, not configuration: set it again after from_config.
        return {"n_users": self.n_users, "n_items": self.n_items,
                "backbone": tf.keras.layers.serialize(self.backbone),
                "lambda_theta": self.lambda_theta, "image_shape": list(self.image_shape),
                "name": self.name}


def _image_shape(backbone: tf.keras.Model, image_shape: Sequence[int] | None) -> tuple[int, ...]:
    if image_shape is None:
        try:
            image_shape = backbone.input_shape[1:]
        except (AttributeError, RuntimeError):
            raise ValueError("The backbone has no input shape yet (not built): pass image_shape. "
                             f"Received: backbone={backbone.name!r}") from None
    image_shape = tuple(image_shape)
    if (len(image_shape) != 3 or image_shape[2] != 3
            or not all(isinstance(s, int) and s > 0 for s in image_shape[:2])):
        raise ValueError("`image_shape` must be (height, width, 3) with static sizes. "
                         f"Received: image_shape={image_shape}")
    return image_shape
