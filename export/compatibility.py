"""The compatibility head's module: a customer's score of a pair of items, and the best partners
for an item (``contract.COMPATIBILITY``: ``score_pairs``, ``complete_pair`` = serving_default).

``CompatibilityParts`` (``tfrec_fashion.training.serving_parts``) carry each customer's
conditioning vector, each item's input to the scorer (computed once when training ended) and the
model's ``PairScorer``, a graph function of (customer, item, partner). ``complete_pair`` scores
the item against every candidate partner with that same function, one request row at a time
(``tf.map_fn``; [N] scorer rows per request row), masks what may not be a partner (the item
itself, other categories, exclusions) and keeps the top k. Unknown customers get the mean
customer's vector, flagged by ``cold_start``; unknown item ids and categories, and a
``score_pairs`` pair whose categories are not complements (two tops), fail inside the graph with
``InvalidArgumentError`` (INVALID_ARGUMENT when served). A scorer with subspace
attention (PSA-Net) adds ``score_pairs``' optional ``attention_weights`` output: the weights the
score used, the mean customer's for an unknown one. A scorer that reads a customer vector
(``PairScorer.user_dim`` > 0: PSA-Net) adds the optional ``score_pairs_new_customer`` and
``complete_pair_new_customer``: the same answers for customers given by their vector
(``customer_embedding`` [B, E], in the space of the parts' customer vectors: a new customer's,
computed by the model those vectors come from) instead of their id.
"""

from __future__ import annotations

import numpy as np
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.training.serving_parts import CompatibilityParts
from tfrec_fashion_export.module import (broadcast_rows, checked_k, complement_table,
                                         head_signatures, known_rows, lookup_table, top_k_answer,
                                         vectors_or_default, without_rows)
from tfrec_fashion_serving.contract import (COMPATIBILITY, COMPLETE_PAIR,
                                            COMPLETE_PAIR_NEW_CUSTOMER, SCORE_PAIRS,
                                            SCORE_PAIRS_NEW_CUSTOMER)


def takes_customer_embedding(parts: CompatibilityParts) -> bool:
    """Whether the export has the ``*_new_customer`` signatures: the scorer reads a customer
    vector and the parts hold those vectors in their upstream file's space, as they say
    (``info["customer_vectors"]``, PSA-Net runs from issue 24 on). Older runs hold them
    standardised beside a scorer that does not standardise, where an upstream query would be
    scored in the wrong space, so they keep exactly the signatures they had."""
    return parts.scorer.user_dim > 0 and "customer_vectors" in parts.info


class CompatibilityModule(tf.Module):
    """The SavedModel's root for the compatibility head.

    Args:
        parts: what the trained pair model contributes.
    """

    def __init__(self, parts: CompatibilityParts):
        super().__init__(name="compatibility")
        categories = np.unique(parts.item_categories)
        self.category_names = ", ".join(categories)
        item_category_rows = np.searchsorted(categories, parts.item_categories).astype(np.int32)
        partners, self.complement_names = complement_table(categories, parts.complements)
        self.n_items = len(parts.item_ids)
        self.has_complements = bool(partners.any())
        self.user_table = lookup_table(parts.user_ids, "user_ids")
        self.item_table = lookup_table(parts.item_ids, "item_ids")
        self.category_table = lookup_table(categories, "categories")
        self.item_ids = tf.Variable(parts.item_ids, trainable=False, name="item_id_list")
        self.item_category_rows = tf.Variable(item_category_rows, trainable=False,
                                              name="item_category_rows")
        self.partner_categories = tf.Variable(partners, trainable=False,
                                              name="partner_categories")
        self.user_vectors = tf.Variable(parts.user_vectors, trainable=False, name="user_vectors")
        self.cold_vector = tf.Variable(parts.cold_start_vector, trainable=False,
                                       name="cold_vector")
        self.item_vectors = tf.Variable(parts.item_vectors, trainable=False, name="item_vectors")
        self.scorer = parts.scorer
        self.scorer_variables = list(parts.scorer.variables)
        self.takes_embedding = takes_customer_embedding(parts)
        if self.takes_embedding:  # tf.functions of the methods: their defaults are kept
            self.score_pairs_new_customer = tf.function(
                self._score_pairs_new_customer,
                input_signature=SCORE_PAIRS_NEW_CUSTOMER.input_signature())
            self.complete_pair_new_customer = tf.function(
                self._complete_pair_new_customer,
                input_signature=COMPLETE_PAIR_NEW_CUSTOMER.input_signature())

    def _user(self, user_id: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(conditioning vectors float32 [B, E], cold_start bool [B])."""
        return vectors_or_default(self.user_table, user_id, self.user_vectors, self.cold_vector)

    def _embedded(self, customer_embedding: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(``customer_embedding`` [B, E] once checked: E the scorer's, every value finite;
        cold_start all False), the ``_user`` of the ``*_new_customer`` signatures."""
        dim = self.scorer.user_dim
        finite = tf.reduce_all(tf.math.is_finite(customer_embedding), axis=1)
        checks = [
            tf.debugging.Assert(tf.equal(tf.shape(customer_embedding)[1], dim), [
                "customer_embedding has", tf.shape(customer_embedding)[1],
                f"columns; the customer vectors of this model have {dim}"]),
            tf.debugging.Assert(tf.reduce_all(finite), [
                "customer_embedding holds values that are not finite (NaN or inf) in row(s)",
                tf.where(tf.logical_not(finite))[:, 0]], summarize=10)]
        with tf.control_dependencies(checks):  # E known to the graph: the scorer's input
            return (tf.ensure_shape(customer_embedding, [None, dim]),
                    tf.zeros([tf.shape(customer_embedding)[0]], tf.bool))

    def _item_rows(self, item_ids: tf.Tensor, what: str) -> tf.Tensor:
        return known_rows(self.item_table, item_ids, what)

    @tf.function(input_signature=SCORE_PAIRS.input_signature())
    def score_pairs(self, user_id, item_id, partner_id):
        """Each customer's score of (item, partner): [B], higher = more compatible; with the
        customer's subspace weights [B, S] where the model has them."""
        return self._pair_scores(self._user(user_id), item_id, partner_id, "user_id")

    def _score_pairs_new_customer(self, customer_embedding, item_id, partner_id):
        """``score_pairs`` for customers given by their vectors."""
        answer = self._pair_scores(self._embedded(customer_embedding), item_id, partner_id,
                                   "customer_embedding")
        return {name: value for name, value in answer.items() if name != "cold_start"}

    def _pair_scores(self, customers, item_id, partner_id, batch_of):
        user, cold = customers
        batch = tf.shape(user)[0]
        item_id = broadcast_rows(item_id, batch, "item_id", batch_of)
        partner_id = broadcast_rows(partner_id, batch, "partner_id", batch_of)
        item_rows = self._item_rows(item_id, "score_pairs item_id")
        partner_rows = self._item_rows(partner_id, "score_pairs partner_id")
        checks = []
        if self.has_complements:  # a model that names no complements scores any pair
            pairs = tf.stack([tf.gather(self.item_category_rows, item_rows),
                              tf.gather(self.item_category_rows, partner_rows)], axis=1)
            checks.append(tf.debugging.assert_equal(
                tf.gather_nd(self.partner_categories, pairs), True,
                message=f"score_pairs: item_id and partner_id must come from complementary "
                        f"categories ({self.complement_names}); a pair of the same category "
                        "is not an outfit this model scores"))
        with tf.control_dependencies(checks):
            items = tf.gather(self.item_vectors, item_rows)
            partners = tf.gather(self.item_vectors, partner_rows)
        answer = {"scores": self.scorer.score(user, items, partners), "cold_start": cold}
        if self.scorer.attention is not None:  # the optional output (PSA-Net's weights)
            answer["attention_weights"] = self.scorer.attention(user)
        return answer

    @tf.function(input_signature=COMPLETE_PAIR.input_signature())
    def complete_pair(self, user_id, item_id, k=COMPLETE_PAIR.default("k"),
                      category=COMPLETE_PAIR.default("category"),
                      exclude_item_ids=COMPLETE_PAIR.default("exclude_item_ids")):
        """The k best partners of each item for each customer: [B, K], K = max(k)."""
        return self._best_partners(self._user(user_id), item_id, k, category,
                                   exclude_item_ids, "user_id")

    def _complete_pair_new_customer(
            self, customer_embedding, item_id, k=COMPLETE_PAIR_NEW_CUSTOMER.default("k"),
            category=COMPLETE_PAIR_NEW_CUSTOMER.default("category"),
            exclude_item_ids=COMPLETE_PAIR_NEW_CUSTOMER.default("exclude_item_ids")):
        """``complete_pair`` for customers given by their vectors."""
        answer = self._best_partners(self._embedded(customer_embedding), item_id, k, category,
                                     exclude_item_ids, "customer_embedding")
        return {name: value for name, value in answer.items() if name != "cold_start"}

    def _best_partners(self, customers, item_id, k, category, exclude_item_ids, batch_of):
        user, cold = customers
        batch = tf.shape(user)[0]
        item_id = broadcast_rows(item_id, batch, "item_id", batch_of)
        k = broadcast_rows(k, batch, "k", batch_of)
        category = broadcast_rows(category, batch, "category", batch_of)
        exclude_item_ids = broadcast_rows(exclude_item_ids, batch, "exclude_item_ids", batch_of)
        category_rows = self.category_table.lookup(category)
        k = checked_k(batch, k, category, category_rows, self.n_items,
                      f"use \"\" for the item's complements, or one of: {self.category_names}",
                      batch_of)
        rows = self._item_rows(item_id, "complete_pair item_id")
        own = tf.gather(self.item_category_rows, rows)  # [B]
        has_partners = tf.reduce_any(tf.gather(self.partner_categories, own), axis=1)
        check = tf.debugging.assert_equal(
            tf.logical_or(tf.not_equal(category, ""), has_partners), True,
            message=f"complete_pair: the item's category has no complementary category in this "
                    f"model (it completes {self.complement_names}); name the partners' "
                    "category with `category`")
        with tf.control_dependencies([check]):
            own = tf.identity(own)
        allowed = tf.where(tf.equal(category, "")[:, None],
                           tf.gather(self.partner_categories, own),  # [B, C] by category row
                           tf.one_hot(tf.maximum(category_rows, 0),
                                      tf.shape(self.partner_categories)[0], on_value=True,
                                      off_value=False))
        allowed = tf.gather(allowed, self.item_category_rows, axis=1)  # [B, N]
        # The item itself and the excluded ids ("" and unknown ids: -1, ignored).
        allowed = without_rows(allowed, tf.concat(
            [rows[:, None], self.item_table.lookup(exclude_item_ids)], axis=1))

        def score_row(row):
            user_row, item_row = row
            n = self.n_items
            return self.scorer.score(tf.tile(user_row[None, :], [n, 1]),
                                     tf.tile(item_row[None, :], [n, 1]), self.item_vectors)

        scores = tf.map_fn(score_row, (user, tf.gather(self.item_vectors, rows)),
                           fn_output_signature=tf.TensorSpec([None], tf.float32))
        return top_k_answer(scores, allowed, k, self.item_ids, cold)

    def signatures(self) -> dict:
        """Signature name -> function (``head_signatures``); ``serving_default`` =
        ``complete_pair``; the ``*_new_customer`` signatures where the scorer reads a
        customer vector."""
        signatures = head_signatures(self, COMPATIBILITY)
        if self.takes_embedding:
            for signature in (SCORE_PAIRS_NEW_CUSTOMER, COMPLETE_PAIR_NEW_CUSTOMER):
                signatures[signature.name] = getattr(self, signature.name)
        return signatures
