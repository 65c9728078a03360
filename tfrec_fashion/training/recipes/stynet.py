"""Recipe for ``models.stynet.StyNet`` (paper 000, 3.1.2) under the explicit-rating protocol of
``ratings.py`` (per-customer 80/10/10 split, RMSE / vote AUC, baselines, embeddings file).

What the recipe derives from the dataset (``prepare_inputs``):

- **Survey answers** (``users.features``) and **catalogue attributes** (``items.category`` and
  every ``items.attributes`` column) as int codes, one vocabulary per column, sorted; an empty
  answer is -1 (unknown).
- **Visual embedding** (``use_visual_features``): the item features of ``model.feature_source``
  (``layers.item_content``: "dataset" ``items.features``, "attributes" or "efficientnet"),
  standardised.
- **Vote history**: each customer's TRAINING ratings only, in one random order fixed by the
  run's seed, the first ``history_length`` kept (-1 padded); held-out ratings never reach it.
  The model leaves a training row's own target out of the history it reads.
- **Ratings** scaled to [0, 1] by the dataset's ``rating_range`` (+-1 votes: 0 / 1; 1..5 stars:
  (r - 1) / 4); ``predict`` scales back.

``user_vectors`` / ``item_vectors`` are the towers' outputs for every known customer (with their
whole training history) and every item: the embeddings file holds them and the export's
retrieval index serves their dot product (``score_rule = "dot_retrieval"``); the rating itself
comes from the MLP head.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tfrec_fashion  # noqa: F401
import tensorflow as tf

from tfrec_fashion.data.dataset import FashionDataset, Ratings
from tfrec_fashion.data.splits import shuffled_ranks_per_user
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.layers.item_content import item_features
from tfrec_fashion.models.stynet import StyNet
from tfrec_fashion.training.model_configs import model_arguments
from tfrec_fashion.training.recipes.ratings import RatingRecipe

_PREDICT_BATCH = 8192
_MISSING = ("", "nan", "None")


class StyNetRecipe(RatingRecipe):
    """Trains ``StyNet`` with ``fit`` on the training ratings and their features; the rating
    head predicts, the towers give the embeddings.

    Attributes set by ``prepare`` (besides ``RatingRecipe``'s):
        user_vocabularies, item_vocabularies: column name -> sorted str values (code = position).
        user_codes: int32 [n_users, F_u]; item_codes: int32 [n_items, F_i] (-1 unknown).
        visual: float32 [n_items, d] standardised item features of ``model.feature_source``,
            or None.
        history_item: int32 [n_users, L] (-1 padded); history_value: float32 [n_users, L] in
            [0, 1].
    """

    score_rule = "dot_retrieval"

    def prepare_inputs(self, dataset: FashionDataset) -> None:
        config = self.model_config
        self.user_vocabularies, self.user_codes = categorical_codes(dataset.users.features,
                                                                    dataset.n_users)
        self.item_vocabularies, self.item_codes = categorical_codes(
            {"category": dataset.items.category, **dataset.items.attributes}, dataset.n_items)
        self.visual = None
        if config.use_visual_features:
            if config.feature_source == "dataset" and dataset.items.features is None:
                raise ConfigError(f"model.use_visual_features: dataset {dataset.name!r} has no "
                                  "item features (items.features); set use_visual_features: "
                                  "false to train StyNet on ids, attributes and votes alone")
            self.visual = item_features(dataset, config.feature_source)[0]
        self.history_item, self.history_value = vote_histories(
            self.split.train, dataset.n_users, config.history_length,
            self.scaled(self.split.train.value), seed=self.seed)

    # ------------------------------------------------------------------ scale
    def scaled(self, values: np.ndarray) -> np.ndarray:
        """Ratings on the dataset's scale -> [0, 1], float32."""
        low, high = self.rating_range
        return ((np.asarray(values, np.float64) - low) / (high - low)).astype(np.float32)

    def unscaled(self, values: np.ndarray) -> np.ndarray:
        """[0, 1] -> the dataset's scale."""
        low, high = self.rating_range
        return low + np.asarray(values, np.float64) * (high - low)

    # ------------------------------------------------------------------ model and data
    def build_model(self) -> StyNet:
        config = self.model_config
        return StyNet(
            n_users=self.dataset.n_users, n_items=self.dataset.n_items,
            user_feature_vocab_sizes=[len(v) for v in self.user_vocabularies.values()],
            item_feature_vocab_sizes=[len(v) for v in self.item_vocabularies.values()],
            visual_dim=0 if self.visual is None else self.visual.shape[1],
            **model_arguments(config))

    def datasets(self) -> tuple[tf.data.Dataset, None]:
        """Training ratings, shuffled with the run's seed, batched, then joined to their
        inputs by gathers from the per-customer and per-item tables (the same inputs as
        ``features``). Validation is scored each epoch by ``callbacks`` (``val_rmse``,
        ``val_auc``), so none is returned here."""
        train = self.split.train
        rows = tf.data.Dataset.from_tensor_slices(
            {"user": train.user.astype(np.int32), "item": train.item.astype(np.int32),
             "rating": self.scaled(train.value)})
        user_codes, item_codes = tf.constant(self.user_codes), tf.constant(self.item_codes)
        history_item, history_value = (tf.constant(self.history_item),
                                       tf.constant(self.history_value))
        visual = None if self.visual is None else tf.constant(self.visual)

        def join(batch):
            user, item = batch["user"], batch["item"]
            history = tf.gather(history_item, user)
            inputs = {**batch, "user_features": tf.gather(user_codes, user),
                      "history_item": history,
                      "history_value": tf.gather(history_value, user),
                      "history_item_features": tf.gather(item_codes, tf.maximum(history, 0)),
                      "item_features": tf.gather(item_codes, item)}
            if visual is not None:
                inputs["item_visual"] = tf.gather(visual, item)
            return inputs

        return (rows.shuffle(len(train), seed=self.seed, reshuffle_each_iteration=True)
                .batch(self.train_config.batch_size).map(join)
                .prefetch(tf.data.AUTOTUNE)), None

    def customer_inputs(self, user: np.ndarray) -> dict[str, np.ndarray]:
        """The customer tower's inputs for known customers (int indices [n]): id, survey codes
        and the whole training vote history."""
        user = np.asarray(user, np.int64)
        return {"user": user.astype(np.int32), "user_features": self.user_codes[user],
                **self._history_inputs(self.history_item[user], self.history_value[user])}

    def _history_inputs(self, history_item: np.ndarray, history_value: np.ndarray
                        ) -> dict[str, np.ndarray]:
        return {"history_item": history_item, "history_value": history_value,
                "history_item_features": self.item_codes[np.maximum(history_item, 0)]}

    def item_inputs(self, item: np.ndarray) -> dict[str, np.ndarray]:
        """The item tower's inputs for items (int indices [n])."""
        item = np.asarray(item, np.int64)
        inputs = {"item": item.astype(np.int32), "item_features": self.item_codes[item]}
        if self.visual is not None:
            inputs["item_visual"] = self.visual[item]
        return inputs

    def features(self, user: np.ndarray, item: np.ndarray) -> dict[str, np.ndarray]:
        """The model's inputs for known (customer, item) pairs (int index arrays [n])."""
        return {**self.customer_inputs(user), **self.item_inputs(item)}

    # ------------------------------------------------------------------ predictions
    def predict(self, model: StyNet, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Predicted ratings [n] on the dataset's scale for int index arrays [n]."""
        return self.predict_features(model, self.features(user, item))

    def predict_features(self, model: StyNet, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """Predicted ratings [n] on the dataset's scale for model inputs of n rows."""
        return self.unscaled(_batched(model.predict_rating, features))

    def predict_new_customer(self, model: StyNet, survey: Mapping[str, str] | None,
                             history: Sequence[tuple[int, float]] | None,
                             items: np.ndarray) -> np.ndarray:
        """Cold start: ratings (dataset scale) [len(items)] for a customer the model never saw
        (id -1), from survey answers and a few votes.

        Args:
            survey: feature name -> answer, e.g. {"favourite_colour": "navy"}; names or answers
                the training data never had are unknown (-1), missing names too.
            history: (item index, rating on the dataset's scale) pairs; the first
                ``history_length`` are read.
            items: int item indices [n] to rate.
        """
        items = np.asarray(items, np.int64)
        history = list(history or ())
        voted = np.array([item for item, _ in history], np.int64)
        for name, index in (("items", items), ("history", voted)):
            if index.size and (index.min() < 0 or index.max() >= self.dataset.n_items):
                raise ValueError(f"`{name}` must hold item indices in [0, "
                                 f"{self.dataset.n_items}). Received: {name}={index.tolist()}")
        survey = dict(survey or {})
        unknown = sorted(set(survey) - set(self.user_vocabularies))
        if unknown:
            raise ValueError(f"unknown survey features {unknown}; this model knows "
                             f"{sorted(self.user_vocabularies)}. Received: survey={survey}")
        codes = np.array([_code(vocabulary, survey.get(name))
                          for name, vocabulary in self.user_vocabularies.items()], np.int32)
        history_item, history_value = _history_row(history, self.model_config.history_length,
                                                   self.scaled)
        n = len(items)
        customer = {"user": np.full(n, -1, np.int32),
                    "user_features": np.tile(codes, (n, 1)),
                    **self._history_inputs(np.tile(history_item, (n, 1)),
                                           np.tile(history_value, (n, 1)))}
        return self.predict_features(model, {**customer, **self.item_inputs(items)})

    # ------------------------------------------------------------------ embeddings
    def user_vectors(self, model: StyNet) -> np.ndarray:
        """E_c of every known customer with their whole training history, [n_users, D]."""
        # No "item" input: no target, the whole history is read.
        return _batched(model.customer_embeddings,
                        self.customer_inputs(np.arange(self.dataset.n_users)))

    def item_vectors(self, model: StyNet) -> np.ndarray:
        """M_i of every item, [n_items, D]."""
        return _batched(model.item_embeddings, self.item_inputs(np.arange(self.dataset.n_items)))


def categorical_codes(columns: Mapping[str, np.ndarray], n: int
                      ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Encodes categorical columns of ``n`` rows as int codes.

    Returns:
        (name -> sorted str vocabulary, int32 [n, F] codes), code = position in the
        vocabulary, -1 for an empty answer; values are compared as strings.
    """
    vocabularies: dict[str, np.ndarray] = {}
    codes = np.full((n, len(columns)), -1, np.int32)
    for column, (name, values) in enumerate(columns.items()):
        values = np.asarray(values).astype(str)
        present = ~np.isin(values, _MISSING)
        vocabulary, index = np.unique(values[present], return_inverse=True)
        vocabularies[name] = vocabulary
        codes[present, column] = index
    # A column whose every answer is empty has nothing to embed.
    keep = [f for f, vocabulary in enumerate(vocabularies.values()) if len(vocabulary)]
    names = list(vocabularies)
    return {names[f]: vocabularies[names[f]] for f in keep}, codes[:, keep]


def vote_histories(train: Ratings, n_users: int, length: int, scaled_values: np.ndarray,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's first ``length`` training votes in a random order fixed by ``seed``.

    Returns:
        (int32 [n_users, length] item indices, -1 padded; float32 [n_users, length] votes
        scaled to [0, 1], 0 where padded).
    """
    user = np.asarray(train.user, np.int64)
    rows, rank = shuffled_ranks_per_user(user, seed)
    keep = rows[rank < length]
    slot = rank[rank < length]
    history_item = np.full((n_users, length), -1, np.int32)
    history_value = np.zeros((n_users, length), np.float32)
    history_item[user[keep], slot] = train.item[keep]
    history_value[user[keep], slot] = scaled_values[keep]
    return history_item, history_value


def _history_row(history: Sequence[tuple[int, float]], length: int, scale
                 ) -> tuple[np.ndarray, np.ndarray]:
    pairs = list(history)[:length]
    items = np.full(length, -1, np.int32)
    values = np.zeros(length, np.float32)
    if pairs:
        items[:len(pairs)] = [int(item) for item, _ in pairs]
        values[:len(pairs)] = scale(np.array([value for _, value in pairs], np.float64))
    return items, values


def _code(vocabulary: np.ndarray, answer) -> int:
    if answer is None:
        return -1
    position = int(np.searchsorted(vocabulary, str(answer)))
    return position if position < len(vocabulary) and vocabulary[position] == str(answer) else -1


def _batched(function, features: Mapping[str, np.ndarray]) -> np.ndarray:
    """``function`` of the model's inputs, applied in chunks of rows, concatenated."""
    n = len(next(iter(features.values())))
    return np.concatenate([function({k: v[start:start + _PREDICT_BATCH]
                                     for k, v in features.items()}).numpy()
                           for start in range(0, max(n, 1), _PREDICT_BATCH)])
