"""The retrieval head's module: a ``tf.Module`` whose signatures are the serving API (see the
package docstring for the contract: names, dtypes, shapes, defaults).

``RetrievalParts`` (``tfrec_fashion.training.serving_parts``, read from a run directory) is all
an export needs from an inner-product model: string ids, categories, the user and item vectors
whose inner products are the model's scores, and optionally an ``ItemEmbedder`` for new items
(``embed_item``) and a ``NewCustomerQuery`` for new customers (``recommend_new_customer``: the
query folded in from their votes, searched like ``recommend``'s).
``RecommenderModule`` turns them into lookup tables, the retrieval index
(``index.FilteredBruteForce``, or the approximate ``index.FilteredPartitioned``) and the
signatures. Nothing here is specific to one model. The request steps every head
repeats (``lookup_table``, ``broadcast_rows``, ``vectors_or_default``, ``known_rows``,
``checked_k``) are written here once and shared with the other heads' modules.
"""

from __future__ import annotations

import numpy as np
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.training.serving_parts import RetrievalParts
from tfrec_fashion_export.index import make_index
from tfrec_fashion_serving import contract
from tfrec_fashion_serving.contract import (RECOMMEND, RECOMMEND_NEW_CUSTOMER, SCORE,
                                            USER_QUERY)


def lookup_table(keys: np.ndarray, name: str) -> tf.lookup.StaticHashTable:
    """str key -> its row (int32), -1 for an unknown key."""
    initializer = tf.lookup.KeyValueTensorInitializer(
        tf.constant(keys), tf.range(len(keys), dtype=tf.int32))
    return tf.lookup.StaticHashTable(initializer, default_value=-1, name=name)


def broadcast_rows(values: tf.Tensor, batch: tf.Tensor, name: str,
                   batch_of: str = "user_id") -> tf.Tensor:
    """An input of batch size 1 repeated over ``batch`` rows (the size of the request's
    ``batch_of`` input); else it must have ``batch``."""
    size = tf.shape(values)[0]
    tf.debugging.assert_equal(
        tf.logical_or(tf.equal(size, 1), tf.equal(size, batch)), True,
        message=f"{name} must have batch size 1 or that of {batch_of}")
    multiples = tf.concat([[tf.where(tf.equal(size, 1), batch, 1)],
                           tf.ones([tf.rank(values) - 1], tf.int32)], axis=0)
    return tf.tile(values, multiples)


def vectors_or_default(table: tf.lookup.StaticHashTable, ids: tf.Tensor, vectors: tf.Variable,
                       default: tf.Variable) -> tuple[tf.Tensor, tf.Tensor]:
    """(each id's row of ``vectors``, or ``default`` for an unknown id: float32 [B, D];
    cold_start bool [B], True where the id was unknown)."""
    rows = table.lookup(ids)
    cold = rows < 0
    known = tf.gather(vectors, tf.maximum(rows, 0))
    return tf.where(cold[:, None], default[None, :], known), cold


def complement_table(categories: np.ndarray, complements: dict[str, list[str]]
                     ) -> tuple[np.ndarray, str]:
    """(bool [C, C]: row c marks the categories that complete category c, by their index in
    the sorted ``categories``; the complements as one line for messages)."""
    partners = np.zeros((len(categories), len(categories)), bool)
    for category, completing in complements.items():
        partners[np.searchsorted(categories, category),
                 np.searchsorted(categories, completing)] = True
    names = "; ".join(f"{category} -> {', '.join(completing) or 'none'}"
                      for category, completing in sorted(complements.items()))
    return partners, names or "none"


def known_rows(table: tf.lookup.StaticHashTable, item_ids: tf.Tensor, what: str) -> tf.Tensor:
    """Rows of string item ids (any shape); an unknown id is an InvalidArgumentError, raised
    before any gather reads the rows."""
    rows = table.lookup(item_ids)
    check = tf.debugging.assert_non_negative(rows, message=f"{what}: unknown item id")
    with tf.control_dependencies([check]):
        return tf.identity(rows)


def without_rows(allowed: tf.Tensor, excluded: tf.Tensor) -> tf.Tensor:
    """``allowed`` bool [B, N] with each row's ``excluded`` item rows int [B, M] (-1: none, as
    unknown or empty ids look up) set False; a [B, N] count scattered from the rows, so
    O(B (M + N)) whatever M is."""
    where = tf.where(excluded >= 0)  # [P, 2] (row, position)
    hits = tf.scatter_nd(
        tf.stack([where[:, 0], tf.cast(tf.gather_nd(excluded, where), tf.int64)], axis=1),
        tf.ones(tf.shape(where)[:1], tf.int32), tf.cast(tf.shape(allowed), tf.int64))
    return allowed & tf.equal(hits, 0)


def top_k_answer(scores: tf.Tensor, allowed: tf.Tensor, k: tf.Tensor, item_ids: tf.Variable,
                 cold: tf.Tensor, rows: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
    """The top ``k`` [B] allowed items of scores [B, N] as a signature's answer: item_ids
    string [B, K] (padding ""), scores [B, K] (padding -inf), cold_start; K = max(k). Column j
    of ``scores`` is item row j, or ``rows[:, j]`` (int [B, N]) when given."""
    scores = tf.where(allowed, scores, -np.inf)
    top_scores, top_rows = tf.math.top_k(scores, tf.reduce_max(k))
    if rows is not None:
        top_rows = tf.maximum(tf.gather(rows, top_rows, batch_dims=1), 0)
    valid = (tf.range(tf.shape(top_rows)[1])[None, :] < k[:, None]) & (top_scores > -np.inf)
    return {"item_ids": tf.where(valid, tf.gather(item_ids, top_rows), ""),
            "scores": tf.where(valid, top_scores, -np.inf), "cold_start": cold}


def head_signatures(module: tf.Module, head: "contract.Head") -> dict:
    """Signature name -> the module's tf.function of that name, for every signature of
    ``head``, and ``serving_default`` -> the head's default. The tf.functions themselves, not
    concrete functions: only they carry the default argument values into
    ``SignatureDef.defaults``, which TF Serving fills missing inputs from."""
    signatures = {signature.name: getattr(module, signature.name)
                  for signature in head.signatures}
    signatures[contract.SERVING_DEFAULT] = signatures[head.default]
    return signatures


def top_k_checks(batch: tf.Tensor, k: tf.Tensor, n_items: int,
                 batch_of: str = "user_id") -> list[tf.Operation]:
    """The checks every top-k request takes: at least one row (of the ``batch_of`` input),
    1 <= k <= n_items."""
    return [
        tf.debugging.assert_greater(batch, 0, message=f"{batch_of} must hold at least one id"),
        tf.debugging.assert_greater_equal(k, 1, message=f"k must be in [1, {n_items}]"),
        tf.debugging.assert_less_equal(k, n_items, message=f"k must be in [1, {n_items}]"),
    ]


def checked_k(batch: tf.Tensor, k: tf.Tensor, category: tf.Tensor, category_rows: tf.Tensor,
              n_items: int, category_help: str, batch_of: str = "user_id") -> tf.Tensor:
    """``k``, available only once the request's top-k inputs are checked: ``top_k_checks`` and
    a known category or "" (``category_help`` says what "" means and lists the categories)."""
    checks = [
        *top_k_checks(batch, k, n_items, batch_of),
        tf.debugging.assert_equal(tf.logical_or(tf.equal(category, ""), category_rows >= 0),
                                  True, message=f"unknown category; {category_help}"),
    ]
    with tf.control_dependencies(checks):  # nothing is retrieved before the inputs are checked
        return tf.identity(k)


class RecommenderModule(tf.Module):
    """The SavedModel's root: lookup tables, vectors, the index and the signature functions.

    Args:
        parts: what the trained model contributes.
        index: "brute_force" (exact) or "partitioned" (approximate, stock ops only).
        index_params: the partitioned index's parameters (``PartitionedTopK`` arguments).
    """

    def __init__(self, parts: RetrievalParts, index: str = "brute_force",
                 index_params: dict | None = None):
        super().__init__(name="recommender")
        self.n_items = len(parts.item_ids)
        categories = np.unique(parts.item_categories)
        self.category_names = ", ".join(categories)
        self.user_table = lookup_table(parts.user_ids, "user_ids")
        self.item_table = lookup_table(parts.item_ids, "item_ids")
        self.category_table = lookup_table(categories, "categories")
        self.item_ids = tf.Variable(parts.item_ids, trainable=False, name="item_id_list")
        self.user_vectors = tf.Variable(parts.user_vectors, trainable=False, name="user_vectors")
        self.item_vectors = tf.Variable(parts.item_vectors, trainable=False, name="item_vectors")
        self.cold_query = tf.Variable(parts.cold_start_query, trainable=False, name="cold_query")
        # Each user's bought items as a ragged table: row u is seen_items[splits[u]:splits[u+1]].
        self.seen_splits = tf.Variable(parts.seen.indptr.astype(np.int64), trainable=False,
                                       name="seen_splits")
        self.seen_items = tf.Variable(parts.seen.indices.astype(np.int32), trainable=False,
                                      name="seen_items")
        max_norm = float(np.linalg.norm(parts.user_vectors, axis=1).max())
        self.index = make_index(index, parts.item_vectors,
                                np.searchsorted(categories, parts.item_categories),
                                len(categories), max_norm, **(index_params or {}))
        self.embedder = parts.embedder
        if parts.embedder is not None:
            self.embedder_variables = list(parts.embedder.variables)
            self.embed_item = tf.function(self._embed_item,
                                          input_signature=[parts.embedder.input_spec])
        self.new_customer = parts.new_customer
        if parts.new_customer is not None:
            self.new_customer_variables = list(parts.new_customer.variables)
            # A tf.function of the method, not a concrete function: its argument defaults
            # become the SignatureDef's defaults (head_signatures).
            # A model that reads a survey (StyNet) takes the contract's optional survey inputs
            # too; one that does not (Partial Dual) exactly the votes' signature.
            self.recommend_new_customer = tf.function(
                self._recommend_new_customer_with_survey if parts.new_customer.survey
                else self._recommend_new_customer,
                input_signature=RECOMMEND_NEW_CUSTOMER.input_signature(
                    optional=bool(parts.new_customer.survey)))

    # ------------------------------------------------------------------ shared steps
    def _query(self, user_id: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(query vectors float32 [B, D], cold_start bool [B]) of string user ids [B]."""
        return vectors_or_default(self.user_table, user_id, self.user_vectors, self.cold_query)

    def _seen(self, user_id: tf.Tensor, wanted: tf.Tensor) -> tf.Tensor:
        """Item rows each user already bought, int32 [B, S] padded with -1; all -1 for unknown
        users and for rows whose ``wanted`` is False."""
        rows = self.user_table.lookup(user_id)
        table = tf.RaggedTensor.from_row_splits(self.seen_items, self.seen_splits,
                                                validate=False)
        seen = tf.gather(table, tf.maximum(rows, 0)).to_tensor(default_value=-1)
        return tf.where(tf.logical_and(rows >= 0, wanted)[:, None], seen, -1)

    def _top_k_inputs(self, batch: tf.Tensor, k: tf.Tensor, category: tf.Tensor,
                      exclude_item_ids: tf.Tensor, batch_of: str = "user_id"
                      ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(k int32 [B], checked; category rows int32 [B], -1 for any; excluded item rows
        int32 [B, M], -1 for "" and unknown ids) of a top-k request's inputs, each broadcast
        over the ``batch`` rows of its ``batch_of`` input."""
        k = broadcast_rows(k, batch, "k", batch_of)
        category = broadcast_rows(category, batch, "category", batch_of)
        exclude_item_ids = broadcast_rows(exclude_item_ids, batch, "exclude_item_ids", batch_of)
        category_rows = self.category_table.lookup(category)
        k = checked_k(batch, k, category, category_rows, self.n_items,
                      f"use \"\" for any, or one of: {self.category_names}", batch_of)
        return k, category_rows, self.item_table.lookup(exclude_item_ids)

    def _retrieve(self, query: tf.Tensor, k: tf.Tensor, category_rows: tf.Tensor,
                  excluded: tf.Tensor) -> dict[str, tf.Tensor]:
        """The index's top-k for queries [B, D]: item_ids string [B, K] (padding ""), scores
        [B, K] (padding -inf)."""
        rows, scores = self.index(query, k, category_rows, excluded)
        item_ids = tf.where(rows >= 0, tf.gather(self.item_ids, tf.maximum(rows, 0)), "")
        return {"item_ids": item_ids, "scores": scores}

    def _item_rows(self, item_ids: tf.Tensor, what: str) -> tf.Tensor:
        """Rows of string item ids (any shape); an unknown id is an InvalidArgumentError."""
        return known_rows(self.item_table, item_ids, what)

    # ------------------------------------------------------------------ signatures
    @tf.function(input_signature=RECOMMEND.input_signature())
    def recommend(self, user_id, k=RECOMMEND.default("k"), category=RECOMMEND.default("category"),
                  exclude_item_ids=RECOMMEND.default("exclude_item_ids"),
                  exclude_seen=RECOMMEND.default("exclude_seen")):
        """Top-k items for each user (see the package docstring)."""
        batch = tf.shape(user_id)[0]
        k, category_rows, excluded = self._top_k_inputs(batch, k, category, exclude_item_ids)
        exclude_seen = broadcast_rows(exclude_seen, batch, "exclude_seen")
        excluded = tf.concat([excluded, self._seen(user_id, exclude_seen)], axis=1)
        query, cold = self._query(user_id)
        return {**self._retrieve(query, k, category_rows, excluded), "cold_start": cold}

    @tf.function(input_signature=SCORE.input_signature())
    def score(self, user_id, item_ids):
        """The model's score of each (user, item) pair: [B, N]."""
        query, cold = self._query(user_id)
        items = tf.gather(self.item_vectors, self._item_rows(item_ids, "score"))  # [B, N, D]
        return {"scores": tf.einsum("bd,bnd->bn", query, items), "cold_start": cold}

    @tf.function(input_signature=USER_QUERY.input_signature())
    def user_query(self, user_id):
        """What ``recommend`` searches with, for indexes kept outside the model: the query
        vector and the items the user bought (string [B, S], padded with "")."""
        query, cold = self._query(user_id)
        seen = self._seen(user_id, tf.ones_like(cold))
        seen_ids = tf.where(seen >= 0, tf.gather(self.item_ids, tf.maximum(seen, 0)), "")
        return {"query": query, "cold_start": cold, "seen_item_ids": seen_ids}

    def _embed_item(self, content):
        """The new item's row; refuses content that would embed to nonsense."""
        name = self.embedder.input_name
        checks = [tf.debugging.assert_all_finite(content, f"{name} must be finite")]
        if name == "image":
            message = "image values must lie in [0, 1] (divide 8-bit pixels by 255)"
            checks += [tf.debugging.assert_greater_equal(content, 0.0, message=message),
                       tf.debugging.assert_less_equal(content, 1.0, message=message)]
        with tf.control_dependencies(checks):
            content = tf.identity(content)
        return {"embedding": self.embedder.embed(content)}

    def _recommend_new_customer(
            self, voted_item_ids, votes, k=RECOMMEND_NEW_CUSTOMER.default("k"),
            category=RECOMMEND_NEW_CUSTOMER.default("category"),
            exclude_item_ids=RECOMMEND_NEW_CUSTOMER.default("exclude_item_ids"),
            exclude_voted=RECOMMEND_NEW_CUSTOMER.default("exclude_voted")):
        """Top-k items for customers the model was not trained on, from their votes: the
        parts' query of each row's votes ("" ids are padding; none: the cold-start query),
        searched as ``recommend`` searches a known customer's, the voted items left out
        unless ``exclude_voted`` is False."""
        return self._new_customer_answer(voted_item_ids, votes, k, category, exclude_item_ids,
                                         exclude_voted)

    def _recommend_new_customer_with_survey(
            self, voted_item_ids, votes, k=RECOMMEND_NEW_CUSTOMER.default("k"),
            category=RECOMMEND_NEW_CUSTOMER.default("category"),
            exclude_item_ids=RECOMMEND_NEW_CUSTOMER.default("exclude_item_ids"),
            exclude_voted=RECOMMEND_NEW_CUSTOMER.default("exclude_voted"),
            survey_questions=RECOMMEND_NEW_CUSTOMER.default("survey_questions"),
            survey_answers=RECOMMEND_NEW_CUSTOMER.default("survey_answers")):
        """``_recommend_new_customer`` for a model whose query also reads survey answers
        (a batch-size-1 survey broadcasts); a row with answers but no votes is answered from
        its survey, cold_start only where it has neither."""
        return self._new_customer_answer(voted_item_ids, votes, k, category, exclude_item_ids,
                                         exclude_voted, (survey_questions, survey_answers))

    def _new_customer_answer(self, voted_item_ids, votes, k, category, exclude_item_ids,
                             exclude_voted, survey=None):
        same_shape = tf.debugging.assert_equal(
            tf.shape(votes), tf.shape(voted_item_ids),
            message="votes must have the shape of voted_item_ids [B, M] (one vote per item)")
        with tf.control_dependencies([same_shape]):
            batch = tf.shape(voted_item_ids)[0]
        k, category_rows, excluded = self._top_k_inputs(batch, k, category, exclude_item_ids,
                                                        "voted_item_ids")
        exclude_voted = broadcast_rows(exclude_voted, batch, "exclude_voted", "voted_item_ids")
        voted = self.item_table.lookup(voted_item_ids)  # "": -1, left out of nothing
        excluded = tf.concat([excluded, tf.where(exclude_voted[:, None], voted, -1)], axis=1)
        cold = tf.reduce_all(tf.equal(voted_item_ids, ""), axis=1)
        if survey is None:
            query = self.new_customer.query(voted_item_ids, votes)
        else:
            same_survey = tf.debugging.assert_equal(
                tf.shape(survey[0]), tf.shape(survey[1]), message=(
                    "survey_answers must have the shape of survey_questions [B, Q] (one answer "
                    "per question)"))
            with tf.control_dependencies([same_survey]):
                questions, answers = (broadcast_rows(values, batch, name, "voted_item_ids")
                                      for values, name in zip(survey, ("survey_questions",
                                                                       "survey_answers")))
            query = self.new_customer.query(voted_item_ids, votes, questions, answers)
            answered = tf.not_equal(questions, "") & tf.not_equal(answers, "")
            cold &= tf.logical_not(tf.reduce_any(answered, axis=1))
        return {**self._retrieve(query, k, category_rows, excluded), "query": query,
                "cold_start": cold}

    def signatures(self) -> dict:
        """Signature name -> function (``head_signatures``), ``serving_default`` =
        ``recommend``, ``embed_item`` for models that see item content and
        ``recommend_new_customer`` for models that fold new customers in."""
        signatures = head_signatures(self, contract.RETRIEVAL)
        if self.embedder is not None:
            signatures["embed_item"] = self.embed_item
        if self.new_customer is not None:
            signatures[RECOMMEND_NEW_CUSTOMER.name] = self.recommend_new_customer
        return signatures
