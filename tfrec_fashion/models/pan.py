"""PAN (paper 001): personalised outfit recommendation with user-aware attention and binary codes.

Three blocks (Fig. 2), each a section of this file:

- **User encoder** (section 2.1): user id -> embedding f_u (eq. 1, the fc layer on a one-hot id,
  i.e. an embedding row, D = ``embedding_dim``) -> one fc layer -> binary code b_u in
  {-1, +1}^K (K = ``code_bits``).
- **Item encoder** (section 2.2): an item's feature map F [h, w, c] -> user-aware channel
  attention (eq. 2) -> user-aware spatial attention (eq. 3) -> global average pooling ->
  type-aware two-layer embedding of the item's slot (section 3.2) -> v in R^K -> binary code b.
  F is the content itself when ``backbone is None`` (precomputed maps of a frozen trunk, as the
  paper's Table 2), else ``backbone(images)``, trained end to end (Table 1).
- **Preference predictor** (section 2.3, eq. 4)::

      p = 1/z1 sum_m b_u W(u) b_m                  z1 = S K
      g = 1/z2 sum_{m != n} b_m W(i) b_n           z2 = S (S - 1) K
      y = g + alpha p

  z1 and z2 count the terms times the code length, so |p| <= ||W(u)||_2 and |g| <= ||W(i)||_2 for
  any S and K (the paper leaves them unspecified). W(u) and W(i) start at the identity (the
  Hamming-affinity inner products of FHN [9]).

Codes. During training b = tanh(slope * x) (``relaxation="tanh"``), slope = slope_start *
(1 + slope_growth * t) annealed with the training step t (``relaxation_step``, a saved variable
advanced by ``train_step``), or the straight-through sign (``"straight_through"``: sign forward,
identity gradient). At inference (``training=False``, ``call``, every public method) b =
sign(x) exactly, with sign(0) = +1.

Losses (``tasks.outfits.OutfitRanking``): BPR over S1 (eq. 6) + lambda_user * the user-specific
loss over S2 (eq. 7) + lambda_vse * VSE (eq. 8, with text). Batches are positives only,
{"user": int [B], "outfit": int [B, S]}; the triplets are built in the graph:

- S1 negatives: row i's negative is *hard* for round(hard_negative_ratio * B) rows chosen at
  random (round half to even), *random* for the others: every item replaced by a uniform item of
  the same slot from the whole catalogue (FHN's random negatives). Hard negatives
  (``hard_negatives``, section 2.3's online mining):
  - "loss" (the default): of ``hard_candidates`` random outfits, the one u_i's current model
    scores highest (the largest BPR loss for this user; scored without gradient, sign codes);
  - "nearest_user": the positive outfit of the batch user nearest to u_i by Euclidean distance
    between the (training-mode) user codes b_u, other rows of the same user excluded, ties
    broken at random; a hard row whose batch holds no other user falls back to a random
    negative and is counted as random.
  ``negative_outfits`` returns which rows are hard.
- S2: row i's outfit with its own user against the user of a uniformly drawn other row of the
  batch; masked out when that is the same user.

Departures from the paper, all documented here:

- The paper mines hard negatives "based on the loss and the similarity of learnt user
  embeddings" and "the items with the top K-ratio close distance". Read as the outfit liked by
  the nearest user ("nearest_user") they hurt on the planted world in every ablation row (similar
  users like similar outfits there, so the nearest user's outfit is often a good one: a false
  negative; seed 0, PAN FITB / AUC 0.567 / 0.896 against 0.603 / 0.914 without). Read as the
  loss (the highest-scoring of random candidates for this user, "loss") they help: 0.645 /
  0.925. Hard S2 users are not mined (random other user).
- Attention takes the continuous user embedding f_u (the paper's "user embedding u_i"), not b_u.
- The channel attention's shared MLP is CBAM's W1 ReLU(W0 x), hidden width
  max(1, c // channel_reduction); the user branch W_cu is a linear map to c logits.
- The spatial attention's user branch W_su is a linear map of f_u to h * w logits, one per
  location (a scalar would shift every location alike and could not say *where*). The kernel is
  s_k = min(7, 2 max(h, w) - 1): on maps smaller than 4x4 a 7x7 "same" kernel only adds taps
  that read the zero padding.
- ``user_aware_attention=False`` is FHN [9] as the paper describes it (no attention: the
  pooled map goes straight to the type-aware embedding), i.e. Table 2's rows without "AN".
- ``personalised=False`` drops p (y = g), the non-personalised compatibility baseline; with
  ``user_aware_attention=True`` the item codes still depend on the user, so use both switches
  for a model that never reads the user.
- The text branch (``text_dim > 0``): the item's text vector goes through its own type-aware
  two-layer embedding to R^K, and only the VSE loss reads it (on the continuous v and text
  vectors of the positive outfits' items, the batch's other items as negatives); scores are
  visual only, so serving needs no text. The paper's separate learning rate (0.1) for the
  attention modules is not reproduced: one optimizer for everything.
- Losses are means over the batch rather than sums.

Serving: ``user_vectors()`` is f_u [n_users, D] (``cold_start_user_vector()`` their mean) and
``outfit_scores_from(user_vectors, item_content, item_slot)`` the whole scorer from tensors and
``model.variables``. Item content (and text) are data tables (``ItemTable``): set them again on a
model rebuilt from its config. An unknown user (index outside [0, n_users), e.g. -1) gets the
mean user vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.models.base import RecommenderModel
from tfrec_fashion.models.item_table import ItemTable
from tfrec_fashion.serialization import register_serializable
from tfrec_fashion.tasks.outfits import OutfitRanking, visual_semantic_loss

RELAXATIONS = ("tanh", "straight_through")
HARD_NEGATIVES = ("loss", "nearest_user")
MAX_KERNEL = 7  # s_k of section 3.2


def sign_code(x: tf.Tensor) -> tf.Tensor:
    """The exact binary code: +1 where x >= 0, else -1 (float32, same shape)."""
    return tf.where(x >= 0, tf.ones_like(x), -tf.ones_like(x))


def relaxed_code(x: tf.Tensor, slope: tf.Tensor | float, relaxation: str) -> tf.Tensor:
    """The training code: tanh(slope x), or sign(x) with the identity gradient."""
    if relaxation == "tanh":
        return tf.tanh(slope * x)
    return x + tf.stop_gradient(sign_code(x) - x)


@register_serializable
class UserAwareChannelAttention(tf.keras.layers.Layer):
    """Eq. 2: C = sigma(W1 ReLU(W0 F_avg) + W1 ReLU(W0 F_max) + W_cu u): float [B, c] of feature
    maps [B, h, w, c] and user vectors [B, D]."""

    def __init__(self, channels: int, hidden: int, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.hidden, self.l2 = int(channels), int(hidden), float(l2)
        regularizer = tf.keras.regularizers.l2(l2) if l2 else None
        self.squeeze = tf.keras.layers.Dense(hidden, activation="relu", name="w0",
                                             kernel_regularizer=regularizer)
        self.excite = tf.keras.layers.Dense(channels, name="w1", kernel_regularizer=regularizer)
        self.user_branch = tf.keras.layers.Dense(channels, use_bias=False, name="w_cu",
                                                 kernel_regularizer=regularizer)

    def call(self, feature_maps: tf.Tensor, user_vectors: tf.Tensor) -> tf.Tensor:
        average = tf.reduce_mean(feature_maps, axis=[1, 2])
        maximum = tf.reduce_max(feature_maps, axis=[1, 2])
        logits = (self.excite(self.squeeze(average)) + self.excite(self.squeeze(maximum))
                  + self.user_branch(user_vectors))
        return tf.sigmoid(logits)

    def get_config(self) -> dict:
        return {**super().get_config(), "channels": self.channels, "hidden": self.hidden,
                "l2": self.l2}


@register_serializable
class UserAwareSpatialAttention(tf.keras.layers.Layer):
    """Eq. 3: S = sigma(conv_{sk x sk}([F_avg^s; F_max^s]) + W_su u): float [B, h, w] of feature
    maps [B, h, w, c] and user vectors [B, D] (W_su u: one logit per location)."""

    def __init__(self, height: int, width: int, kernel_size: int, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)
        self.kernel_size, self.l2 = int(kernel_size), float(l2)
        regularizer = tf.keras.regularizers.l2(l2) if l2 else None
        self.conv = tf.keras.layers.Conv2D(1, kernel_size, padding="same", name="conv",
                                           kernel_regularizer=regularizer)
        self.user_branch = tf.keras.layers.Dense(height * width, use_bias=False, name="w_su",
                                                 kernel_regularizer=regularizer)

    def call(self, feature_maps: tf.Tensor, user_vectors: tf.Tensor) -> tf.Tensor:
        pooled = tf.stack([tf.reduce_mean(feature_maps, axis=-1),
                           tf.reduce_max(feature_maps, axis=-1)], axis=-1)
        user = tf.reshape(self.user_branch(user_vectors), [-1, self.height, self.width])
        return tf.sigmoid(self.conv(pooled)[..., 0] + user)

    def get_config(self) -> dict:
        return {**super().get_config(), "height": self.height, "width": self.width,
                "kernel_size": self.kernel_size, "l2": self.l2}


@register_serializable
class TypeAwareEmbedding(tf.keras.layers.Layer):
    """Two fc layers per slot (ReLU, then linear): float [N, output_dim] of x [N, d] and each
    row's slot index [N]; every slot's layers run on every row and the row's slot is kept."""

    def __init__(self, n_slots: int, input_dim: int, hidden_dim: int, output_dim: int,
                 l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.n_slots, self.input_dim = int(n_slots), int(input_dim)
        self.hidden_dim, self.output_dim, self.l2 = int(hidden_dim), int(output_dim), float(l2)
        regularizer = tf.keras.regularizers.l2(l2) if l2 else None
        shapes = {"kernel_1": (n_slots, input_dim, hidden_dim), "bias_1": (n_slots, hidden_dim),
                  "kernel_2": (n_slots, hidden_dim, output_dim), "bias_2": (n_slots, output_dim)}
        for name, shape in shapes.items():
            setattr(self, name, self.add_weight(
                name=name, shape=shape, initializer="glorot_uniform" if "kernel" in name
                else "zeros", regularizer=regularizer if "kernel" in name else None))

    def call(self, x: tf.Tensor, slots: tf.Tensor) -> tf.Tensor:
        slots = tf.one_hot(tf.cast(slots, tf.int32), self.n_slots)  # [N, S]
        hidden = tf.nn.relu(tf.einsum("nd,sdh->nsh", x, self.kernel_1) + self.bias_1)
        out = tf.einsum("nsh,sho->nso", hidden, self.kernel_2) + self.bias_2
        return tf.einsum("nso,ns->no", out, slots)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_slots": self.n_slots, "input_dim": self.input_dim,
                "hidden_dim": self.hidden_dim, "output_dim": self.output_dim, "l2": self.l2}


@register_serializable
class PAN(RecommenderModel):
    """Personalised attention network for outfit recommendation (see the module docstring).

    Args:
        n_users, n_items: numbers of user and item indices.
        n_slots: S, the slots of an outfit (e.g. top, bottom, shoes); at least 2.
        content_shape: one item's content: (h, w, c) feature maps when ``backbone is None``,
            else the backbone's input, e.g. (H, W, 3) images.
        item_slots: int [n_items], each item's slot in [0, n_slots) (its type-aware embedding).
        backbone: a Keras model content [B, *content_shape] -> maps [B, h, w, c], or its
            ``tf.keras.layers.serialize`` dict; None = the content is the maps.
        code_bits: K, the length of the binary codes.
        embedding_dim: D, the user embedding size and the type-aware layers' hidden width.
        text_dim: the item text vectors' size; 0 = no text branch and no VSE loss.
        alpha: the weight of the user-item preference p in y = g + alpha p (eq. 4).
        lambda_user, lambda_vse: eq. 9's lambda_1 and lambda_2.
        user_aware_attention: False = FHN, no attention (see the module docstring).
        hard_negative_ratio: the share of S1 negatives that are hard.
        hard_negatives: how they are mined, "loss" or "nearest_user" (module docstring).
        hard_candidates: with "loss", the random outfits the hardest is chosen from.
        personalised: False = y = g only.
        relaxation: "tanh" or "straight_through", the training-time code.
        slope_start, slope_growth: the tanh slope, slope_start * (1 + slope_growth * step).
        l2: L2 weight on every kernel of the attention and embedding layers.
        item_content: optional float [n_items, *content_shape]; else ``set_item_content``.
        item_text: optional float [n_items, text_dim]; else ``set_item_text``.
        channel_reduction: CBAM's reduction ratio of the channel attention's hidden layer.
        vse_margin: m of eq. 8 (cosine similarities).

    Inputs to ``fit``: batches of positives {"user": int [B], "outfit": int [B, S]}.

    Example:

        model = PAN(n_users, n_items, 3, (4, 4, 8), item_slots, item_content=maps)
        model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
        model.fit(outfits.batch(64), epochs=10)
        model({"user": users, "outfit": outfits})         # [B] scores (sign codes)
        model.spatial_attention(users, items)             # [B, h, w] heatmaps (Fig. 3)
    """

    def __init__(self, n_users: int, n_items: int, n_slots: int, content_shape: Sequence[int],
                 item_slots: Any, backbone: tf.keras.Model | dict | None = None,
                 code_bits: int = 64, embedding_dim: int = 64, text_dim: int = 0,
                 alpha: float = 1.0, lambda_user: float = 0.1, lambda_vse: float = 0.1,
                 user_aware_attention: bool = True, hard_negative_ratio: float = 0.5,
                 hard_negatives: str = "loss", hard_candidates: int = 8,
                 personalised: bool = True, relaxation: str = "tanh",
                 slope_start: float = 1.0, slope_growth: float = 0.005, l2: float = 0.0,
                 item_content: Any = None, item_text: Any = None, channel_reduction: int = 4,
                 vse_margin: float = 0.2, name: str = "pan", **kwargs):
        super().__init__(name=name, **kwargs)
        for key, value in (("n_users", n_users), ("n_items", n_items), ("code_bits", code_bits),
                           ("embedding_dim", embedding_dim),
                           ("channel_reduction", channel_reduction)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{key} must be a positive integer. Received: {key}={value!r}")
        if isinstance(n_slots, bool) or int(n_slots) != n_slots or n_slots < 2:
            raise ValueError(f"n_slots must be an integer >= 2 (g reads pairs of slots). "
                             f"Received: n_slots={n_slots!r}")
        if relaxation not in RELAXATIONS:
            raise ValueError(f"relaxation must be one of {list(RELAXATIONS)}. "
                             f"Received: relaxation={relaxation!r}")
        if not 0 <= hard_negative_ratio <= 1:
            raise ValueError("hard_negative_ratio must be in [0, 1]. Received: "
                             f"hard_negative_ratio={hard_negative_ratio}")
        if hard_negatives not in HARD_NEGATIVES or int(hard_candidates) < 1:
            raise ValueError(f"hard_negatives must be one of {list(HARD_NEGATIVES)} and "
                             f"hard_candidates positive. Received: "
                             f"hard_negatives={hard_negatives!r}, "
                             f"hard_candidates={hard_candidates}")
        if text_dim < 0 or l2 < 0 or slope_start <= 0 or slope_growth < 0:
            raise ValueError("text_dim, l2 and slope_growth must be non-negative and "
                             f"slope_start positive. Received: text_dim={text_dim}, l2={l2}, "
                             f"slope_start={slope_start}, slope_growth={slope_growth}")
        item_slots = np.asarray(item_slots, np.int64).reshape(-1)
        if item_slots.shape != (n_items,) or item_slots.min() < 0 or item_slots.max() >= n_slots:
            raise ValueError(f"item_slots must be {n_items} slot indices in [0, {n_slots}). "
                             f"Received: shape={item_slots.shape}")
        if isinstance(backbone, dict):
            backbone = tf.keras.layers.deserialize(backbone)
        self.n_users, self.n_items, self.n_slots = int(n_users), int(n_items), int(n_slots)
        self.content_shape = tuple(int(size) for size in content_shape)
        self.item_slots = item_slots.astype(np.int32)
        self.backbone, self.has_backbone = backbone, backbone is not None
        self.code_bits, self.embedding_dim, self.text_dim = (int(code_bits),
                                                             int(embedding_dim), int(text_dim))
        self.alpha, self.lambda_user, self.lambda_vse = (float(alpha), float(lambda_user),
                                                         float(lambda_vse))
        self.user_aware_attention, self.personalised = (bool(user_aware_attention),
                                                        bool(personalised))
        self.hard_negative_ratio, self.relaxation = float(hard_negative_ratio), relaxation
        self.hard_negatives, self.hard_candidates = hard_negatives, int(hard_candidates)
        self.slope_start, self.slope_growth, self.l2 = (float(slope_start), float(slope_growth),
                                                        float(l2))
        self.channel_reduction, self.vse_margin = int(channel_reduction), float(vse_margin)
        regularizer = tf.keras.regularizers.l2(l2) if l2 else None
        maps = self.feature_maps(tf.zeros((1, *self.content_shape)))
        if maps.shape.rank != 4:
            raise ValueError("the item encoder reads feature maps [B, h, w, c]: "
                             f"got {maps.shape} from content {self.content_shape}")
        self.map_shape = tuple(int(size) for size in maps.shape[1:])
        height, width, channels = self.map_shape
        self.kernel_size = min(MAX_KERNEL, 2 * max(height, width) - 1)

        # === User encoder (section 2.1) ===
        self.user_embedding = tf.keras.layers.Embedding(n_users, embedding_dim,
                                                        name="user_embedding")  # eq. 1
        self.user_hash = tf.keras.layers.Dense(code_bits, name="user_hash",
                                               kernel_regularizer=regularizer)
        self.user_embedding.build([None])
        self.user_hash.build([None, embedding_dim])
        # === Item encoder (section 2.2) ===
        if self.user_aware_attention:
            self.channel_attention = UserAwareChannelAttention(
                channels, max(1, channels // channel_reduction), l2, name="channel_attention")
            self.spatial_attention_layer = UserAwareSpatialAttention(
                height, width, self.kernel_size, l2, name="spatial_attention")
            users, maps = tf.zeros((1, embedding_dim)), tf.zeros((1, *self.map_shape))
            self.channel_attention(maps, users)
            self.spatial_attention_layer(maps, users)
        self.item_embedding = TypeAwareEmbedding(n_slots, channels, embedding_dim, code_bits,
                                                 l2, name="item_embedding")
        if self.text_dim:
            self.text_embedding = TypeAwareEmbedding(n_slots, text_dim, embedding_dim,
                                                     code_bits, l2, name="text_embedding")
        # === Preference predictor (section 2.3) ===
        self.compatibility_weights = self.add_weight(
            name="compatibility_weights", shape=(code_bits, code_bits), initializer="identity")
        if self.personalised:
            self.preference_weights = self.add_weight(
                name="preference_weights", shape=(code_bits, code_bits), initializer="identity")
        self.relaxation_step = self.add_weight(name="relaxation_step", shape=(),
                                               dtype=tf.int64, initializer="zeros",
                                               trainable=False)
        self.task = OutfitRanking(lambda_user, lambda_vse)
        self.built = True  # every weight exists: a resumed run restores them before any call
        self._item_content = ItemTable("item_content", setter="set_item_content")
        self._item_text = ItemTable("item_text", setter="set_item_text")
        if item_content is not None:
            self.set_item_content(item_content)
        if item_text is not None:
            self.set_item_text(item_text)
        # Items of each slot, contiguous: random negatives draw a slot's item in the graph.
        order = np.argsort(self.item_slots, kind="stable")
        counts = np.bincount(self.item_slots, minlength=n_slots)
        self._slot_items = tf.constant(order, tf.int32)
        self._slot_starts = tf.constant(np.concatenate([[0], np.cumsum(counts)[:-1]]), tf.int32)
        self._slot_counts = tf.constant(counts, tf.int32)
        self._item_slot_table = tf.constant(self.item_slots, tf.int32)

    # ------------------------------------------------------------------ data tables
    def set_item_content(self, content: Any) -> None:
        """Sets the content table, float [n_items, *content_shape], rows in item order."""
        self._item_content.set(content, (self.n_items, *self.content_shape),
                               self.distribute_strategy)

    def set_item_text(self, text: Any) -> None:
        """Sets the text table, float [n_items, text_dim] (only with text_dim > 0)."""
        if not self.text_dim:
            raise ValueError(f"item_text must be [{self.n_items}, {self.text_dim}] (text_dim "
                             f"> 0). Received: shape={tuple(np.shape(text))}")
        self._item_text.set(text, (self.n_items, self.text_dim), self.distribute_strategy,
                            note=" (text_dim > 0)")

    # ------------------------------------------------------------------ user encoder
    def user_vectors(self) -> tf.Tensor:
        """f_u of every user, float32 [n_users, D]: what ``outfit_scores_from`` reads."""
        return tf.convert_to_tensor(self.user_embedding.embeddings)

    def cold_start_user_vector(self) -> tf.Tensor:
        """The mean user vector, float32 [D], for a user the model does not know."""
        return tf.reduce_mean(self.user_vectors(), axis=0)

    def user_vectors_for(self, users: Any) -> tf.Tensor:
        """f_u of user indices [B]: float32 [B, D]; an index outside [0, n_users) gets the
        mean."""
        users = tf.cast(users, tf.int32)
        known = (users >= 0) & (users < self.n_users)
        rows = self.user_embedding(tf.where(known, users, 0))
        return tf.where(known[:, None], rows, self.cold_start_user_vector()[None])

    def code(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        """Binary codes of pre-codes x: relaxed in training, sign(x) otherwise."""
        if not training:
            return sign_code(x)
        slope = self.slope_start * (
            1.0 + self.slope_growth * tf.cast(self.relaxation_step, tf.float32))
        return relaxed_code(x, slope, self.relaxation)

    def user_codes(self, users: Any) -> tf.Tensor:
        """b_u in {-1, +1}: float32 [B, K] of user indices [B]."""
        return self.code(self.user_hash(self.user_vectors_for(users)), training=False)

    # ------------------------------------------------------------------ item encoder
    def feature_maps(self, content: Any, training: bool = False) -> tf.Tensor:
        """F: float32 [N, h, w, c] of content [N, *content_shape]."""
        content = tf.convert_to_tensor(content, tf.float32)
        return self.backbone(content, training=training) if self.has_backbone else content

    def attend(self, user_vectors: tf.Tensor, maps: tf.Tensor) -> tf.Tensor:
        """F'' = S ⊙ (C ⊙ F) (eq. 2, then eq. 3 on the channel-refined map): [N, h, w, c] of
        f_u [N, D] and F [N, h, w, c]; F itself without user-aware attention (FHN)."""
        if not self.user_aware_attention:
            return maps
        maps = maps * self.channel_attention(maps, user_vectors)[:, None, None, :]
        return maps * self.spatial_attention_layer(maps, user_vectors)[..., None]

    def item_precodes(self, user_vectors: tf.Tensor, maps: tf.Tensor,
                      slots: tf.Tensor) -> tf.Tensor:
        """v, the items' vectors before hashing: float32 [N, K] of f_u [N, D], F and slots [N]."""
        pooled = tf.reduce_mean(self.attend(user_vectors, maps), axis=[1, 2])
        return self.item_embedding(pooled, slots)

    def spatial_attention(self, users: Any, items: Any) -> tf.Tensor:
        """S of eq. 3 for each (user, item): float32 [B, h, w] (ones without attention)."""
        user_vectors = self.user_vectors_for(users)
        maps = self.feature_maps(tf.gather(self._item_content.get(self.name),
                                           tf.cast(items, tf.int32)))
        if not self.user_aware_attention:
            return tf.ones(tf.shape(maps)[:3])
        maps = maps * self.channel_attention(maps, user_vectors)[:, None, None, :]
        return self.spatial_attention_layer(maps, user_vectors)

    def item_codes(self, users: Any, items: Any) -> tf.Tensor:
        """b of each (user, item) in {-1, +1}: float32 [B, K]."""
        items = tf.cast(items, tf.int32)
        maps = self.feature_maps(tf.gather(self._item_content.get(self.name), items))
        return sign_code(self.item_precodes(self.user_vectors_for(users), maps,
                                            tf.gather(self._item_slot_table, items)))

    # ------------------------------------------------------------------ preference predictor
    def preference_scores(self, user_codes: tf.Tensor, item_codes: tf.Tensor) -> tf.Tensor:
        """y = g + alpha p (eq. 4): float32 [B] of b_u [B, K] and the outfit's b [B, S, K]."""
        s, k = self.n_slots, float(self.code_bits)
        pairs = tf.einsum("bmk,kl,bnl->bmn", item_codes, self.compatibility_weights, item_codes)
        off_diagonal = 1.0 - tf.eye(s)
        g = tf.reduce_sum(pairs * off_diagonal, axis=[1, 2]) / (s * (s - 1) * k)
        if not self.personalised:
            return g
        p = tf.einsum("bk,kl,bml->b", user_codes, self.preference_weights,
                      item_codes) / (s * k)
        return g + self.alpha * p

    def blank_query(self, user_codes: tf.Tensor, item_codes: tf.Tensor,
                    blank: tf.Tensor) -> tf.Tensor:
        """q with y(outfit, c in the blank) = const + <q, b_c> (eq. 4 is linear in each item's
        code): float32 [B, K] of b_u [B, K], the outfit's codes [B, S, K] (the blank's row is not
        read) and the blank's slot int [B]. With o the sum of the other items' codes,
        q = (W(i) + W(i)^T) o / z2 + alpha W(u)^T b_u / z1; sign(q) is the code whose Hamming
        ranking approximates the exact one (``fill_in_the_blank`` by Hamming, then re-ranked)."""
        s, k = self.n_slots, float(self.code_bits)
        others = tf.cast(tf.not_equal(tf.range(s)[None, :], tf.cast(blank, tf.int32)[:, None]),
                         tf.float32)
        rest = tf.einsum("bsk,bs->bk", item_codes, others)
        weights = self.compatibility_weights
        query = tf.matmul(rest, weights + tf.transpose(weights)) / (s * (s - 1) * k)
        if self.personalised:
            query += self.alpha * tf.matmul(user_codes, self.preference_weights) / (s * k)
        return query

    def codes_from(self, user_vectors: Any, item_content: Any, item_slot: Any
                   ) -> tuple[tf.Tensor, tf.Tensor]:
        """(b_u float32 [B, K], b float32 [B, S, K]) in {-1, +1} of f_u [B, D], content
        [B, S, *content_shape] and slots int [B, S]; graph-safe (the export's codes)."""
        user_vectors = tf.convert_to_tensor(user_vectors, tf.float32)
        content = tf.reshape(tf.convert_to_tensor(item_content, tf.float32),
                             [-1, *self.content_shape])
        slots = tf.reshape(tf.cast(item_slot, tf.int32), [-1])
        maps = self.feature_maps(content)
        n_slots = tf.shape(slots)[0] // tf.shape(user_vectors)[0]
        precodes = self.item_precodes(tf.repeat(user_vectors, n_slots, axis=0), maps, slots)
        return (sign_code(self.user_hash(user_vectors)),
                tf.reshape(sign_code(precodes), [tf.shape(user_vectors)[0], -1,
                                                 self.code_bits]))

    def _scores(self, user_vectors: tf.Tensor, maps: tf.Tensor, slots: tf.Tensor,
                training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """(y [B], v [B * S, K]) of f_u [B, D], F [B * S, h, w, c] and slots [B * S]."""
        repeated = tf.repeat(user_vectors, self.n_slots, axis=0)
        precodes = self.item_precodes(repeated, maps, slots)
        item_codes = tf.reshape(self.code(precodes, training), [-1, self.n_slots,
                                                                self.code_bits])
        return self.preference_scores(self.code(self.user_hash(user_vectors), training),
                                      item_codes), precodes

    def outfit_scores_from(self, user_vectors: Any, item_content: Any,
                           item_slot: Any) -> tf.Tensor:
        """y of each outfit: float32 [B] of f_u [B, D], content [B, S, *content_shape] and slots
        int [B, S]; sign codes, graph-safe (the SavedModel's scorer)."""
        user_vectors = tf.convert_to_tensor(user_vectors, tf.float32)
        content = tf.reshape(tf.convert_to_tensor(item_content, tf.float32),
                             [-1, *self.content_shape])
        slots = tf.reshape(tf.cast(item_slot, tf.int32), [-1])
        return self._scores(user_vectors, self.feature_maps(content), slots, False)[0]

    def call(self, inputs) -> tf.Tensor:
        """Scores of {"user" [B], "outfit" [B, S]}: float32 [B] (sign codes)."""
        outfits = tf.cast(inputs["outfit"], tf.int32)
        return self.outfit_scores_from(
            self.user_vectors_for(inputs["user"]),
            tf.gather(self._item_content.get(self.name), outfits),
            tf.gather(self._item_slot_table, outfits))

    # ------------------------------------------------------------------ training triplets
    def random_outfits(self, outfits: tf.Tensor) -> tf.Tensor:
        """Each item replaced by a uniform catalogue item of its slot: int32 [B, S]."""
        slots = tf.gather(self._item_slot_table, outfits)
        counts = tf.gather(self._slot_counts, slots)
        offsets = tf.cast(tf.random.uniform(tf.shape(outfits)) * tf.cast(counts, tf.float32),
                          tf.int32)
        offsets = tf.minimum(offsets, counts - 1)
        return tf.gather(self._slot_items, tf.gather(self._slot_starts, slots) + offsets)

    def negative_outfits(self, users: tf.Tensor, outfits: tf.Tensor,
                         user_codes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """S1 negatives (module docstring): (int32 [B, S], hard bool [B]) of users [B], their
        positive outfits [B, S] and their codes [B, K]."""
        users, outfits = tf.cast(users, tf.int32), tf.cast(outfits, tf.int32)
        batch = tf.shape(users)[0]
        n_hard = tf.cast(tf.round(self.hard_negative_ratio * tf.cast(batch, tf.float32)),
                         tf.int32)
        rank = tf.argsort(tf.argsort(tf.random.uniform([batch])))
        hard = rank < n_hard
        if self.hard_negative_ratio == 0:  # nothing to mine
            return self.random_outfits(outfits), hard
        if self.hard_negatives == "loss":
            hardest = self._highest_scoring_random_outfits(users, outfits)
        else:
            hardest, has_other = self._nearest_users_outfits(users, outfits, user_codes)
            hard = hard & has_other
        return tf.where(hard[:, None], hardest, self.random_outfits(outfits)), hard

    def _highest_scoring_random_outfits(self, users: tf.Tensor, outfits: tf.Tensor
                                        ) -> tf.Tensor:
        """Of ``hard_candidates`` random outfits per row, the one its user's current model
        scores highest (no gradient): int32 [B, S]."""
        candidates = tf.stack([self.random_outfits(outfits)
                               for _ in range(self.hard_candidates)], axis=1)  # [B, C, S]
        flat = tf.reshape(candidates, [-1, self.n_slots])
        scores = tf.stop_gradient(self.outfit_scores_from(
            self.user_vectors_for(tf.repeat(users, self.hard_candidates)),
            tf.gather(self._item_content.get(self.name), flat),
            tf.gather(self._item_slot_table, flat)))
        best = tf.argmax(tf.reshape(scores, [-1, self.hard_candidates]), axis=1,
                         output_type=tf.int32)
        return tf.gather(candidates, best, batch_dims=1)

    def _nearest_users_outfits(self, users: tf.Tensor, outfits: tf.Tensor,
                               user_codes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The positive outfit of each row's nearest other batch user by code distance, and
        whether the row has another user at all: (int32 [B, S], bool [B])."""
        codes = tf.stop_gradient(user_codes)
        squared = tf.reduce_sum(tf.square(codes[:, None, :] - codes[None, :, :]), axis=-1)
        other = tf.not_equal(users[:, None], users[None, :])
        distance = tf.where(other, squared, tf.fill(tf.shape(squared), np.inf))
        # Binary codes tie often: the nearest is drawn uniformly among the rows at the minimum.
        at_minimum = distance <= tf.reduce_min(distance, axis=1, keepdims=True)
        draw = tf.where(at_minimum, tf.random.uniform(tf.shape(distance)), -1.0)
        nearest = tf.argmax(draw, axis=1, output_type=tf.int32)
        return tf.gather(outfits, nearest), tf.reduce_any(other, axis=1)

    def other_users(self, users: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """S2's other user: (row index int32 [B] of a uniform other row, mask bool [B] of rows
        whose other user differs)."""
        users = tf.cast(users, tf.int32)
        batch = tf.shape(users)[0]
        shift = tf.random.uniform([batch], 1, tf.maximum(batch, 2), tf.int32)
        rows = (tf.range(batch) + shift) % batch
        return rows, tf.not_equal(tf.gather(users, rows), users)

    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        users, outfits = tf.cast(inputs["user"], tf.int32), tf.cast(inputs["outfit"], tf.int32)
        user_vectors = self.user_vectors_for(users)
        user_codes = self.code(self.user_hash(user_vectors), training)
        negatives, _ = self.negative_outfits(users, outfits, user_codes)
        others, mask = self.other_users(users)
        positive_items, negative_items = tf.reshape(outfits, [-1]), tf.reshape(negatives, [-1])
        content = tf.gather(self._item_content.get(self.name),
                            tf.concat([positive_items, negative_items], axis=0))
        positive_maps, negative_maps = tf.split(self.feature_maps(content, training), 2)
        positive_slots = tf.gather(self._item_slot_table, positive_items)
        negative_slots = tf.gather(self._item_slot_table, negative_items)
        y_positive, visual = self._scores(user_vectors, positive_maps, positive_slots, training)
        y_negative, _ = self._scores(user_vectors, negative_maps, negative_slots, training)
        y_other, _ = self._scores(tf.gather(user_vectors, others), positive_maps,
                                  positive_slots, training)
        vse = None
        if self.text_dim:
            text = self.text_embedding(tf.gather(self._item_text.get(self.name),
                                                 positive_items), positive_slots)
            per_item = visual_semantic_loss(visual, text, self.vse_margin, positive_items)
            vse = tf.reduce_mean(tf.reshape(per_item, [-1, self.n_slots]), axis=1)
        return self.task(y_positive, y_negative, y_positive, y_other, mask, vse)

    def train_step(self, inputs):
        """TFRS's train step, then the relaxation's step counter advances (the slope anneals)."""
        metrics = super().train_step(inputs)
        self.relaxation_step.assign_add(1)
        return metrics

    def get_config(self) -> dict:
        # The item content and text are data: set them after from_config.
        return {"n_users": self.n_users, "n_items": self.n_items, "n_slots": self.n_slots,
                "content_shape": list(self.content_shape),
                "item_slots": self.item_slots.tolist(),
                "backbone": (tf.keras.layers.serialize(self.backbone) if self.has_backbone
                             else None),
                "code_bits": self.code_bits, "embedding_dim": self.embedding_dim,
                "text_dim": self.text_dim, "alpha": self.alpha,
                "lambda_user": self.lambda_user, "lambda_vse": self.lambda_vse,
                "user_aware_attention": self.user_aware_attention,
                "hard_negative_ratio": self.hard_negative_ratio,
                "hard_negatives": self.hard_negatives, "hard_candidates": self.hard_candidates,
                "personalised": self.personalised, "relaxation": self.relaxation,
                "slope_start": self.slope_start, "slope_growth": self.slope_growth,
                "l2": self.l2, "channel_reduction": self.channel_reduction,
                "vse_margin": self.vse_margin, "name": self.name}
