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
from tfrec_fashion.training.serving_parts import (NewCustomerQuery, RetrievalParts,
                                                  retrieval_parts)

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
        if items.size and (items.min() < 0 or items.max() >= self.dataset.n_items):
            raise ValueError(f"`items` must hold item indices in [0, {self.dataset.n_items}). "
                             f"Received: items={items.tolist()}")
        customer = self.new_customer_inputs(survey, history)
        n = len(items)
        customer = {name: np.repeat(value, n, axis=0) for name, value in customer.items()}
        return self.predict_features(model, {**customer, **self.item_inputs(items)})

    def new_customer_inputs(self, survey: Mapping[str, str] | None,
                            history: Sequence[tuple[int, float]] | None
                            ) -> dict[str, np.ndarray]:
        """The customer tower's inputs (one row) for a customer the model never saw (id -1):
        survey codes (an unknown answer or a missing name -1) and the first
        ``history_length`` votes of ``history`` ((item index, rating on the dataset's scale)
        pairs); ValueError for an item index outside the catalogue or an unknown feature."""
        history = list(history or ())
        voted = np.array([item for item, _ in history], np.int64)
        if voted.size and (voted.min() < 0 or voted.max() >= self.dataset.n_items):
            raise ValueError(f"`history` must hold item indices in [0, {self.dataset.n_items}). "
                             f"Received: history={voted.tolist()}")
        survey = dict(survey or {})
        unknown = sorted(set(survey) - set(self.user_vocabularies))
        if unknown:
            raise ValueError(f"unknown survey features {unknown}; this model knows "
                             f"{sorted(self.user_vocabularies)}. Received: survey={survey}")
        codes = np.array([_code(vocabulary, survey.get(name))
                          for name, vocabulary in self.user_vocabularies.items()], np.int32)
        history_item, history_value = _history_row(history, self.model_config.history_length,
                                                   self.scaled)
        return {"user": np.full(1, -1, np.int32), "user_features": codes.reshape(1, -1),
                **self._history_inputs(history_item[None], history_value[None])}

    def new_customer_query(self, model: StyNet, survey: Mapping[str, str] | None,
                           history: Sequence[tuple[int, float]] | None,
                           cold_start_query: np.ndarray | None = None
                           ) -> tuple[np.ndarray, bool]:
        """The Python path of the served cold start (``recommend_new_customer``): (the
        customer tower's E_c float32 [D] from the survey answers and votes, as
        ``predict_new_customer`` reads them; False), or, for a customer with neither votes nor
        a known answer, (``cold_start_query``, by default the mean known customer's E_c, what
        ``recommend`` serves an unknown id; True)."""
        inputs = self.new_customer_inputs(survey, history)
        if not (inputs["history_item"] >= 0).any() and not (inputs["user_features"] >= 0).any():
            if cold_start_query is None:
                cold_start_query = self.user_vectors(model).mean(axis=0)
            return np.asarray(cold_start_query, np.float32), True
        return model.customer_embeddings(inputs).numpy()[0], False

    # ------------------------------------------------------------------ serving
    def new_customer_query_graph(self, model: StyNet, cold_start_query: np.ndarray
                                 ) -> NewCustomerQuery:
        """The served cold start: ``new_customer_query`` in the graph
        (``StyNetNewCustomerGraph``: ids, answers and votes looked up and checked, the
        customer tower's feature path run on them), with the survey's questions and answers."""
        graph = StyNetNewCustomerGraph(model, self.dataset.items.ids, self.item_codes,
                                       self.user_vocabularies, self.rating_range,
                                       self.model_config.history_length, cold_start_query)
        return NewCustomerQuery(
            graph.query, self.rating_range, [graph, *model.variables],
            "StyNet's customer tower on the unknown id's feature path: survey answers and the "
            f"first {self.model_config.history_length} votes (centred, item-vote and attribute "
            "embeddings); neither: the mean known customer",
            {name: [str(answer) for answer in vocabulary]
             for name, vocabulary in self.user_vocabularies.items()})

    def serving_parts(self, model: StyNet) -> RetrievalParts:
        """The retrieval head's parts with the served cold start, so the export answers
        ``recommend_new_customer`` from survey answers and votes."""
        users = self.user_vectors(model)
        parts = retrieval_parts(self, model, user_vectors=users)
        parts.new_customer = self.new_customer_query_graph(model, parts.cold_start_query)
        return parts

    # ------------------------------------------------------------------ embeddings
    def user_vectors(self, model: StyNet) -> np.ndarray:
        """E_c of every known customer with their whole training history, [n_users, D]."""
        # No "item" input: no target, the whole history is read.
        return _batched(model.customer_embeddings,
                        self.customer_inputs(np.arange(self.dataset.n_users)))

    def item_vectors(self, model: StyNet) -> np.ndarray:
        """M_i of every item, [n_items, D]."""
        return _batched(model.item_embeddings, self.item_inputs(np.arange(self.dataset.n_items)))


class StyNetNewCustomerGraph(tf.Module):
    """StyNet's customer tower for customers it never saw, as graph ops on string inputs:
    item ids and survey answers looked up (unknown ones an ``InvalidArgumentError`` naming
    them, as is a vote outside the rating range), votes scaled to [0, 1], the first
    ``history_length`` real votes of each row kept (as ``StyNetRecipe.new_customer_inputs``
    reads a history), then ``StyNet._customer_tower`` with customer id -1 (the feature path).
    A row with neither votes nor an answer gets ``cold_start_query``. The model is not an
    attribute (the SavedModel keeps its variables, not the Keras object)."""

    def __init__(self, model: StyNet, item_ids: np.ndarray, item_codes: np.ndarray,
                 vocabularies: Mapping[str, np.ndarray], rating_range: Sequence[float],
                 history_length: int, cold_start_query: np.ndarray):
        super().__init__(name="stynet_new_customer")
        # The tower as a bound method, set past tracking: the Keras object is not saved.
        object.__setattr__(self, "_tower", model._customer_tower)
        self.low, self.high = (float(value) for value in rating_range)
        self.history_length = int(history_length)
        self.questions = [str(name) for name in vocabularies]
        self.item_table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(np.asarray(item_ids).astype(str)),
            tf.range(len(item_ids), dtype=tf.int32)), -1)
        self.item_codes = tf.constant(np.asarray(item_codes, np.int32))
        self.cold_start_query = tf.constant(np.asarray(cold_start_query, np.float32))
        self.question_table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(self.questions), tf.range(len(self.questions), dtype=tf.int32)),
            -1) if self.questions else None
        pairs = [(f"{name}\x1f{answer}", code) for name, vocabulary in vocabularies.items()
                 for code, answer in enumerate(np.asarray(vocabulary).astype(str))]
        self.answer_table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant([key for key, _ in pairs] or ["\x1f"], tf.string),
            tf.constant([code for _, code in pairs] or [-1], tf.int32)), -1)

    def query(self, voted_item_ids: tf.Tensor, votes: tf.Tensor,
              survey_questions: tf.Tensor | None = None,
              survey_answers: tf.Tensor | None = None) -> tf.Tensor:
        """E_c float32 [B, D] of B new customers: string ``voted_item_ids`` [B, M] ("" padding)
        and ``votes`` [B, M] on the dataset's scale, string ``survey_questions`` /
        ``survey_answers`` [B, Q] ("" question: padding; "" answer: no answer)."""
        batch = tf.shape(voted_item_ids)[0]
        checks = [tf.debugging.assert_equal(tf.shape(voted_item_ids), tf.shape(votes), message=(
            "one vote per item is needed: item ids and votes differ in shape"))]
        present = tf.not_equal(voted_item_ids, "")
        index = self.item_table.lookup(voted_item_ids)
        unknown = present & (index < 0)
        votes = tf.cast(votes, tf.float32)
        outside = present & tf.logical_not(tf.math.is_finite(votes) & (votes >= self.low)
                                           & (votes <= self.high))
        checks += [
            tf.debugging.Assert(tf.logical_not(tf.reduce_any(unknown)), [
                "unknown item id(s):", tf.boolean_mask(voted_item_ids, unknown)], summarize=5),
            tf.debugging.Assert(tf.logical_not(tf.reduce_any(outside)), [
                "vote value(s)", tf.boolean_mask(votes, outside), "outside the rating range [",
                self.low, ",", self.high, "]"], summarize=5)]
        codes, answered, survey_checks = self._survey_codes(batch, survey_questions,
                                                            survey_answers)
        with tf.control_dependencies(checks + survey_checks):
            index = tf.identity(index)
        # The first history_length real votes, as the Python path reads a history.
        rank = tf.cumsum(tf.cast(present, tf.int32), axis=1, exclusive=True)
        keep = present & (rank < self.history_length)
        history_item = tf.where(keep, index, -1)
        scaled = tf.cast((tf.cast(votes, tf.float64) - self.low) / (self.high - self.low),
                         tf.float32) if self.high > self.low else tf.zeros_like(votes)
        features = {"history_item": history_item,
                    "history_value": tf.where(keep, scaled, 0.0),
                    "history_item_features": tf.gather(self.item_codes,
                                                       tf.maximum(history_item, 0))}
        if codes is not None:
            features["user_features"] = codes
        embedding = tf.cast(self._tower(features, -tf.ones([batch], tf.int32)), tf.float32)
        cold = tf.logical_not(tf.reduce_any(keep, axis=1) | answered)
        return tf.where(cold[:, None], self.cold_start_query[None, :], embedding)

    def _survey_codes(self, batch, questions, answers):
        """(codes int32 [B, F] in the model's question order, -1 unanswered, or None for a
        model without a survey; bool [B], the row answered a question; the checks)."""
        if not self.questions:
            return None, tf.zeros([batch], tf.bool), []
        asked = tf.not_equal(questions, "")
        question = self.question_table.lookup(questions)
        answered = asked & tf.not_equal(answers, "")
        pair = tf.strings.join([questions, answers], separator="\x1f")
        code = self.answer_table.lookup(pair)
        unknown_question = asked & (question < 0)
        unknown_answer = answered & (question >= 0) & (code < 0)
        n_questions = len(self.questions)
        chosen = tf.one_hot(tf.where(answered & (question >= 0), question, -1), n_questions,
                            on_value=True, off_value=False, dtype=tf.bool)  # [B, Q, F]
        twice = tf.reduce_sum(tf.cast(chosen, tf.int32), axis=1) > 1
        checks = [
            tf.debugging.Assert(tf.logical_not(tf.reduce_any(unknown_question)), [
                "unknown survey question(s):", tf.boolean_mask(questions, unknown_question),
                "the questions are:", tf.constant(self.questions)], summarize=20),
            tf.debugging.Assert(tf.logical_not(tf.reduce_any(unknown_answer)), [
                "unknown survey answer(s) (question=answer):",
                tf.boolean_mask(tf.strings.join([questions, answers], separator="="),
                                unknown_answer),
                "the export's description lists each question's answers"], summarize=5),
            tf.debugging.Assert(tf.logical_not(tf.reduce_any(twice)), [
                "survey question(s) answered twice in one row:",
                tf.boolean_mask(tf.tile(tf.constant(self.questions)[None, :], [batch, 1]),
                                twice)], summarize=5)]
        codes = tf.reduce_max(tf.where(chosen, code[:, :, None], -1), axis=1)  # [B, F]
        return tf.maximum(codes, -1), tf.reduce_any(answered, axis=1), checks


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
