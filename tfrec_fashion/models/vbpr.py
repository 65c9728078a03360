"""BPR-MF, VBPR and TVBPR (paper 002 section 3.2, eq. 1-2, after its refs: VBPR, and TVBPR of He &
McAuley's "Ups and Downs", ref [3]): one preference predictor, one class.

    x_ui       = beta_i + gamma_u . gamma_i + theta_u . theta_i + beta' . f_i           eq. 1
    theta_i    = E f_i                                                                  VBPR
    theta_i(t) = (E f_i) * w(t) + dE(t) f_i          (* elementwise)                    eq. 2
    beta'(t)   = beta' * b(t) + dbeta'(t)                                               ref [3]
    x_uij      = x_ui - x_uj,  loss = -ln sigma(x_uij) + L2 (below)                     3.2.2

Eq. 1 is written less alpha and beta_u, which cancel in x_uij. f_i are item features [F]
(pretrained CNN features, or interpretable attributes for I-VBPR), E [K', F] embeds them, beta'
[F] is the visual bias; w [T, K'] (ones at start) reweights the visual dimensions per time epoch
t, dE [T, K', F] (zeros) lets items drift, and b [T, F] (ones) / dbeta' [T, F] (zeros) drift the
visual bias the same way. The bias drift is ref [3]'s, not paper 002's eq. 2 (which shows theta_i
only); ref [3]'s per-item per-epoch bias beta_{i,Bin(t)} is left out: a cold item, the reason
for visual features, gains nothing from it.

The three models are special cases of the one predictor, so they are one class with two
switches rather than three copies: without item features (``feature_dim`` None) it is BPR-MF,
x_ui = beta_i + gamma_u . gamma_i; with them and ``n_time_epochs`` T = 1 it is VBPR (there are
no temporal weights at all); with T > 1 it is TVBPR, which equals VBPR at w = b = 1, dE = dbeta'
= 0. ``latent_dim`` 0 drops gamma (a purely visual model). The epoch segmentation is fixed, not
learned (paper 002 learns it with [3]'s dynamic programme): mapping timestamps to epochs in
[0, T) is the caller's job, and each training triplet carries the epoch of its positive.

Loss per triplet (u, i, j) at epoch t, averaged over the batch:

    -ln sigma(x_uij) + l2_latent / 2 (||gamma_u||^2 + ||gamma_i||^2 + ||gamma_j||^2)
                     + l2_bias / 2 (beta_i^2 + beta_j^2) + l2_visual / 2 ||theta_u||^2
                     + l2_embedding / 2 (||E||^2 + ||beta'||^2 + ||dE||^2 + ||dbeta'||^2
                                         + ||w - 1||^2 + ||b - 1||^2)

The last line is shared by every triplet (as in VBPR's SGD, where every triplet's update
regularises E); w and b are pulled toward 1, not 0, so that without evidence of change TVBPR
shrinks to VBPR rather than switching its visual terms off.

Item features are data, not parameters: like DVBPR's images they sit in an ``ItemTable`` out of
Keras' tracking (neither in checkpoints nor in ``get_config``), given at construction or with
``set_item_features``; training batches stay integer-only.

Every score is an inner product, so one retrieval index serves the whole family exactly:

    user u:        [1,      gamma_u, theta_u,    1             ]   ``user_vectors()``
    item i at t:   [beta_i, gamma_i, theta_i(t), beta'(t) . f_i]   ``item_vectors(epoch)``

(the parts a variant lacks are dropped). A new item's vector comes from its features alone
(``embed_items``: beta_i = 0, gamma_i = 0), the cold start VBPR exists for.

Under a Keras mixed-precision policy (``train.precision``) the scores are computed in the
policy's compute dtype (float16 / bfloat16: the embedding layers return it, the model's own
weights, E, beta' and the temporal ones, and the float32 feature table are cast to it), while the
variables stay float32, the loss and its L2 terms are float32, and every public vector and score
is float32. Under float32 (the default) every cast is the identity.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.models.base import RecommenderModel
from tfrec_fashion.tasks.bpr import BprRanking
from tfrec_fashion.models.item_table import ItemTable
from tfrec_fashion.serialization import register_serializable


@register_serializable
class VBPR(RecommenderModel):
    """Visual BPR: BPR-MF plus a visual term on item features, optionally drifting over time.

    Args:
        n_users: number of user indices (inputs are int indices in [0, n_users)).
        n_items: number of item indices (rows of the item feature table).
        latent_dim: K, size of gamma_u and gamma_i (0: no latent factors, a visual-only model).
        visual_dim: K', size of theta_u and theta_i = E f_i (ignored without item features).
        item_features: optional float [n_items, F], finite; sets ``feature_dim``. Else
            ``set_item_features`` (before training or scoring).
        feature_dim: F, when the features come later; neither this nor ``item_features``:
            BPR-MF, with no visual parameters at all.
        n_time_epochs: T; above 1 the model is TVBPR (needs item features) and every training
            batch needs an "epoch" column.
        l2_latent: L2 weight on gamma_u, gamma_i, gamma_j, as l2 / 2 ||.||^2 per triplet.
        l2_bias: L2 weight on beta_i, beta_j.
        l2_visual: L2 weight on theta_u.
        l2_embedding: L2 weight on E, beta' and the temporal parameters (w, b toward 1).

    Inputs to ``fit``: dict batches {"user", "pos_item", "neg_item"}, each int32 [batch]
    (``data.pipelines.bpr_dataset``), plus "epoch" int32 [batch] in [0, T) when T > 1 (the
    time epoch of the triplet; ignored when T = 1).

    Example:

        model = VBPR(n_users=60, n_items=80, latent_dim=8, visual_dim=4,
                     item_features=features)  # float32 [80, F]
        model.compile(tf.keras.optimizers.Adam(1e-2))
        model.fit(bpr_dataset(sampler, batch_size=128), epochs=10)
        scores = model.score(tf.constant([0, 1]))  # [2, 80]
        cold = model.embed_items(new_features)    # [n_new, D], against model.user_vectors()
    """

    def __init__(self, n_users: int, n_items: int, latent_dim: int = 10, visual_dim: int = 10,
                 item_features: Any = None, feature_dim: int | None = None,
                 n_time_epochs: int = 1, l2_latent: float = 0.01, l2_bias: float = 0.01,
                 l2_visual: float = 0.01, l2_embedding: float = 0.0001, name: str = "vbpr",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_users = _check_int(n_users, "n_users", 1)
        self.n_items = _check_int(n_items, "n_items", 1)
        self.latent_dim = _check_int(latent_dim, "latent_dim", 0)
        self.visual_dim = _check_int(visual_dim, "visual_dim", 1)
        self.n_time_epochs = _check_int(n_time_epochs, "n_time_epochs", 1)
        if feature_dim is not None:
            feature_dim = _check_int(feature_dim, "feature_dim", 1)
        if item_features is not None:
            item_features = _checked_features(item_features, self.n_items, feature_dim)
            feature_dim = int(item_features.shape[1])
        self.feature_dim = feature_dim
        for value, arg in ((l2_latent, "l2_latent"), (l2_bias, "l2_bias"),
                           (l2_visual, "l2_visual"), (l2_embedding, "l2_embedding")):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"`{arg}` must be >= 0. Received: {arg}={value!r}")
        self.l2_latent, self.l2_bias = float(l2_latent), float(l2_bias)
        self.l2_visual, self.l2_embedding = float(l2_visual), float(l2_embedding)
        if self.latent_dim == 0 and not self.has_visual:
            raise ValueError("With `latent_dim`=0 the model needs item features (item_features or "
                             "feature_dim), else it has no parameters. Received: latent_dim=0, "
                             "feature_dim=None")
        if self.is_temporal and not self.has_visual:
            raise ValueError("`n_time_epochs` > 1 (TVBPR) needs item features (item_features or "
                             "feature_dim): time acts on the visual factors. Received: "
                             f"n_time_epochs={self.n_time_epochs}, feature_dim=None")

        # === Layers ===
        # beta_i; gamma_u, gamma_i (eq. 1's latent factors).
        self.beta_item = _embedding(n_items, 1, "zeros", "beta_item")
        if self.latent_dim:
            self.gamma_user = _embedding(n_users, latent_dim, _small_normal(), "gamma_user")
            self.gamma_item = _embedding(n_items, latent_dim, _small_normal(), "gamma_item")
        if self.has_visual:
            # theta_u; E (theta_i = E f_i); beta' (the visual bias beta' . f_i).
            self.theta_user = _embedding(n_users, visual_dim, _small_normal(), "theta_user")
            self.embedding_kernel = self.add_weight(
                name="E", shape=(visual_dim, feature_dim), initializer=_small_normal())
            self.visual_bias = self.add_weight(name="beta_visual", shape=(feature_dim,),
                                               initializer="zeros")
        if self.is_temporal:
            # eq. 2's w(t), dE(t) and ref [3]'s b(t), dbeta'(t): identity and no drift at start.
            shape_w, shape_f = (self.n_time_epochs, visual_dim), (self.n_time_epochs, feature_dim)
            self.time_weights = self.add_weight(name="w", shape=shape_w, initializer="ones")
            self.time_bias_weights = self.add_weight(name="b", shape=shape_f, initializer="ones")
            self.embedding_drift = self.add_weight(
                name="delta_E", shape=(self.n_time_epochs, visual_dim, feature_dim),
                initializer="zeros")
            self.visual_bias_drift = self.add_weight(name="delta_beta", shape=shape_f,
                                                     initializer="zeros")
        # BPR's loss and its pairwise accuracy (the training AUC estimate BPR optimises).
        self.task = BprRanking()
        self._item_features = ItemTable("item_features", setter="set_item_features")
        if item_features is not None:
            self.set_item_features(item_features)
        # Every variable exists from construction, so checkpoints (BackupAndRestore included)
        # restore into a model that has not seen data yet.
        self.built = True

    @property
    def has_visual(self) -> bool:
        """Whether the model has item features (VBPR / TVBPR), not BPR-MF."""
        return self.feature_dim is not None

    @property
    def is_temporal(self) -> bool:
        """Whether the model has time epochs (TVBPR: n_time_epochs > 1)."""
        return self.n_time_epochs > 1

    # ------------------------------------------------------------------ item features
    def set_item_features(self, features: Any) -> None:
        """Sets f_i: float [n_items, feature_dim], finite, rows in item order.

        Later calls replace the values in place (traced training functions see them).
        """
        if not self.has_visual:
            raise ValueError(f"{self.name} is BPR-MF (no item features): it has no use for "
                             "them; build it with item_features= or feature_dim= instead")
        self._item_features.assign(_checked_features(features, self.n_items, self.feature_dim),
                                   self.distribute_strategy)

    @property
    def item_features(self) -> tf.Variable:
        """The item feature table f, float32 [n_items, feature_dim]."""
        return self._item_features.get(self.name)

    # ------------------------------------------------------------------ training
    def compute_loss(self, features, training: bool = False) -> tf.Tensor:
        users = features["user"]
        items = tf.concat([features["pos_item"], features["neg_item"]], axis=0)  # [2 batch]
        epochs = self._batch_epochs(features)
        if epochs is not None:
            epochs = tf.concat([epochs, epochs], axis=0)  # i and j are compared at the same t
        # The training scores are the served inner products, so training and serving agree.
        # One lookup per table serves the scores and the penalty.
        user_parts = self._user_parts(users)  # the rows' parts, [batch, .] each
        item_parts = self._item_parts(items, epochs)  # [2 batch, .] each: i's, then j's
        user_rows = tf.concat(user_parts, axis=-1)  # [batch, D]
        positive_rows, negative_rows = tf.split(tf.concat(item_parts, axis=-1), 2)
        x_ui = tf.reduce_sum(user_rows * positive_rows, -1)
        x_uj = tf.reduce_sum(user_rows * negative_rows, -1)
        # Every triplet carries the shared penalty, so the task's mean over the global batch
        # divides it like the rest: a per-triplet mean whose replica sum counts it once.
        return self.task(x_ui, x_uj, self._triplet_penalty(user_parts, item_parts),
                         self._shared_penalty())

    def _batch_epochs(self, features) -> tf.Tensor | None:
        """The batch's "epoch" column, int32 [batch] checked in [0, T); None unless TVBPR."""
        if not self.is_temporal:
            return None
        if "epoch" not in features:
            raise ValueError(f"{self.name} is temporal (n_time_epochs={self.n_time_epochs}): "
                             "training batches need an \"epoch\" column, int32 [batch] in "
                             f"[0, {self.n_time_epochs}), the time epoch of each triplet. "
                             f"Received keys: {sorted(features)}")
        epochs = tf.cast(features["epoch"], tf.int32)
        # Out-of-range indices would gather zeros on GPU, silently.
        checks = [tf.debugging.assert_non_negative(epochs, message="epoch < 0"),
                  tf.debugging.assert_less(epochs, self.n_time_epochs,
                                           message="epoch >= n_time_epochs")]
        with tf.control_dependencies(checks):
            return tf.identity(epochs)

    def _triplet_penalty(self, user_parts: list[tf.Tensor], item_parts: list[tf.Tensor]
                         ) -> tf.Tensor:
        """L2 of the triplet's own rows, [batch], from the parts of its score's rows
        (``_user_parts``, ``_item_parts`` of [pos_items; neg_items]): the embedding lookups the
        score made, not a second lookup per table (which cost as much again in gathers and in the
        optimizer's sparse-gradient sums, the largest ops of a BPR-MF step), nor slices of the
        concatenated rows (whose gradients are zero-padded full rows)."""
        def squares(values: tf.Tensor) -> tf.Tensor:  # [n, d] -> [n], in float32 (the loss's)
            return tf.reduce_sum(tf.square(tf.cast(values, tf.float32)), -1)

        def pair_sum(values: tf.Tensor) -> tf.Tensor:  # [2 batch, d] -> [batch]: i's + j's
            return tf.add(*tf.split(squares(values), 2))

        # user [1, gamma_u, theta_u, 1], item [beta_i, gamma_i, theta_i, beta' . f_i].
        penalty = 0.5 * self.l2_bias * pair_sum(item_parts[0])
        if self.latent_dim:
            penalty += 0.5 * self.l2_latent * (squares(user_parts[1]) + pair_sum(item_parts[1]))
        if self.has_visual:
            penalty += 0.5 * self.l2_visual * squares(user_parts[2 if self.latent_dim else 1])
        return penalty

    def _shared_penalty(self) -> tf.Tensor:
        """l2_embedding / 2 times the squared norms of E, beta' and the temporal parameters."""
        if not self.has_visual:
            return tf.constant(0.0)
        squares = [self.embedding_kernel, self.visual_bias]
        if self.is_temporal:
            squares += [self.embedding_drift, self.visual_bias_drift,
                        self.time_weights - 1.0, self.time_bias_weights - 1.0]
        return 0.5 * self.l2_embedding * tf.add_n([tf.reduce_sum(tf.square(v)) for v in squares])

    # ------------------------------------------------------------------ vectors
    def _in_compute_dtype(self, value: tf.Tensor) -> tf.Tensor:
        """``value`` in the policy's compute dtype (float32 unless mixed precision)."""
        return tf.cast(value, self.compute_dtype)

    def _user_rows(self, users: tf.Tensor) -> tf.Tensor:
        """[1, gamma_u, theta_u, 1] of int users [n]: [n, D], in the compute dtype."""
        return tf.concat(self._user_parts(users), axis=-1)

    def _user_parts(self, users: tf.Tensor) -> list[tf.Tensor]:
        """The parts of ``_user_rows``, [n, .] each (those the model has)."""
        ones = tf.ones_like(users, self.compute_dtype)[:, None]
        parts = [ones]
        if self.latent_dim:
            parts.append(self.gamma_user(users))
        if self.has_visual:
            parts += [self.theta_user(users), ones]
        return parts

    def _item_rows(self, items: tf.Tensor, epochs: tf.Tensor | None) -> tf.Tensor:
        """[beta_i, gamma_i, theta_i(t), beta'(t) . f_i] of int items [n]: [n, D] in the compute
        dtype; ``epochs`` int32 [] (one t for all) or [n], None unless TVBPR."""
        return tf.concat(self._item_parts(items, epochs), axis=-1)

    def _item_parts(self, items: tf.Tensor, epochs: tf.Tensor | None) -> list[tf.Tensor]:
        """The parts of ``_item_rows``, [n, .] each (those the model has)."""
        parts = [self.beta_item(items)]
        if self.latent_dim:
            parts.append(self.gamma_item(items))
        if self.has_visual:
            parts += self._visual_parts(tf.gather(self.item_features, items), epochs)
        return parts

    def _visual_parts(self, features: tf.Tensor, epochs: tf.Tensor | None
                      ) -> list[tf.Tensor]:
        """[theta_i(t) [n, K'], beta'(t) . f_i [n, 1]] of features f [n, F] (eq. 1-2), in the
        compute dtype."""
        cast = self._in_compute_dtype
        features = cast(features)
        theta = tf.matmul(features, cast(self.embedding_kernel), transpose_b=True)  # E f_i
        bias = cast(self.visual_bias)  # beta'
        if self.is_temporal:
            drift = tf.gather(cast(self.embedding_drift), epochs)  # dE(t): [K', F] / [n, K', F]
            if epochs.shape.rank == 0:
                drift_theta = tf.matmul(features, drift, transpose_b=True)
            else:
                drift_theta = tf.einsum("nkf,nf->nk", drift, features)
            theta = theta * tf.gather(cast(self.time_weights), epochs) + drift_theta  # eq. 2
            bias = (bias * tf.gather(cast(self.time_bias_weights), epochs)
                    + tf.gather(cast(self.visual_bias_drift), epochs))  # ref [3]
        return [theta, tf.reduce_sum(features * bias, axis=-1, keepdims=True)]

    def _serving_epoch(self, epoch: int | None) -> tf.Tensor | None:
        """``epoch`` (None: the last, T - 1, "now") checked in [0, T), as an int32 scalar."""
        last = self.n_time_epochs - 1
        epoch = last if epoch is None else epoch
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) \
                or not 0 <= epoch <= last:
            raise ValueError(f"`epoch` must be an integer in [0, n_time_epochs="
                             f"{self.n_time_epochs}). Received: epoch={epoch!r}")
        return tf.constant(int(epoch), tf.int32) if self.is_temporal else None

    # ------------------------------------------------------------------ inference
    # Every public vector and score is float32, whatever the compute dtype.
    def call(self, users: tf.Tensor) -> tf.Tensor:
        """Returns the user vectors [1, gamma_u, theta_u, 1] of int users [batch]: [batch, D]."""
        return tf.cast(self._user_rows(tf.convert_to_tensor(users)), tf.float32)

    def user_vectors(self) -> tf.Tensor:
        """Returns every user's vector: [n_users, D]."""
        return tf.cast(self._user_rows(tf.range(self.n_users)), tf.float32)

    def item_vectors(self, epoch: int | None = None) -> tf.Tensor:
        """Returns every item's [beta_i, gamma_i, theta_i(t), beta'(t) . f_i]: [n_items, D], at
        time epoch ``epoch`` (None: the last one, what is served now)."""
        return tf.cast(self._item_rows(tf.range(self.n_items), self._serving_epoch(epoch)),
                       tf.float32)

    def embed_items(self, features: Any, epoch: int | None = None) -> tf.Tensor:
        """Vectors of items from their features alone, float [n, feature_dim] -> [n, D], with
        beta_i = 0 and gamma_i = 0: new items (cold start) against ``user_vectors()``."""
        if not self.has_visual:
            raise ValueError(f"{self.name} is BPR-MF (no item features): it cannot embed an "
                             "item from features")
        features = _checked_features(features, None, self.feature_dim)
        n = tf.shape(features)[0]
        zeros = tf.zeros((n, 1 + self.latent_dim), tf.float32)  # beta_i, gamma_i
        visual = self._visual_parts(features, self._serving_epoch(epoch))
        return tf.concat([zeros, *(tf.cast(part, tf.float32) for part in visual)], -1)

    def score(self, users: tf.Tensor, epoch: int | None = None) -> tf.Tensor:
        """Returns x_ui of every item at ``epoch`` (None: the last): [batch, n_items]."""
        return tf.matmul(self(users), self.item_vectors(epoch), transpose_b=True)

    def parameters(self) -> dict[str, np.ndarray]:
        """The learned parameters as NumPy arrays, under their paper names (absent parts left
        out): "gamma_user" [U, K], "gamma_item" [I, K], "beta_item" [I], "theta_user" [U, K'],
        "E" [K', F], "beta_visual" [F], and for TVBPR "w" [T, K'], "b" [T, F],
        "delta_E" [T, K', F], "delta_beta" [T, F]."""
        values: dict[str, Any] = {}
        if self.latent_dim:
            values["gamma_user"] = self.gamma_user.embeddings
            values["gamma_item"] = self.gamma_item.embeddings
        values["beta_item"] = self.beta_item.embeddings[:, 0]
        if self.has_visual:
            values.update(theta_user=self.theta_user.embeddings, E=self.embedding_kernel,
                          beta_visual=self.visual_bias)
        if self.is_temporal:
            values.update(w=self.time_weights, b=self.time_bias_weights,
                          delta_E=self.embedding_drift, delta_beta=self.visual_bias_drift)
        return {key: tf.convert_to_tensor(value).numpy() for key, value in values.items()}

    def get_config(self) -> dict:
        # The item features are data, not configuration: set them again after from_config.
        return {"n_users": self.n_users, "n_items": self.n_items, "latent_dim": self.latent_dim,
                "visual_dim": self.visual_dim, "feature_dim": self.feature_dim,
                "n_time_epochs": self.n_time_epochs, "l2_latent": self.l2_latent,
                "l2_bias": self.l2_bias, "l2_visual": self.l2_visual,
                "l2_embedding": self.l2_embedding, "name": self.name}


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if value < minimum:
        rule = "a positive integer" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"`{name}` must be {rule}. Received: {name}={value!r}")
    return int(value)


def _checked_features(features: Any, n_items: int | None, feature_dim: int | None) -> tf.Tensor:
    """``features`` as float32 [n_items, feature_dim] (None: any), else ValueError."""
    features = tf.convert_to_tensor(features)
    if not features.dtype.is_floating:
        raise ValueError("item features must be float. Received: "
                         f"dtype={features.dtype.name}")
    shape = tuple(features.shape)
    if len(shape) != 2 or any(want is not None and got != want
                              for got, want in zip(shape, (n_items, feature_dim))):
        expected = tuple("n" if n is None else n for n in (n_items, feature_dim))
        raise ValueError(f"item features must have shape (n_items, feature_dim)={expected}. "
                         f"Received: shape={shape}")
    if not tf.executing_eagerly():
        # Traced (e.g. an exported embed_item signature): the check runs in the graph.
        return tf.debugging.assert_all_finite(tf.cast(features, tf.float32),
                                              "item features must be finite")
    bad = int(tf.size(features)) - int(tf.reduce_sum(tf.cast(tf.math.is_finite(features),
                                                             tf.int32)))
    if bad:
        raise ValueError(f"item features must be finite. Received: {bad} NaN or infinite values")
    return tf.cast(features, tf.float32)


def _embedding(rows: int, dim: int, initializer: Any, name: str) -> tf.keras.layers.Embedding:
    layer = tf.keras.layers.Embedding(rows, dim, embeddings_initializer=initializer, name=name)
    layer.build((None,))
    return layer


def _small_normal() -> tf.keras.initializers.Initializer:
    # A fresh instance per variable: Keras 2 gives identical values on reuse of an unseeded one.
    return tf.keras.initializers.RandomNormal(0.0, 0.01)
