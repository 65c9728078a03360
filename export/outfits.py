"""The outfit head's module: a customer's score of a whole outfit, and the best items for an
outfit's blank slot (``contract.OUTFIT``: ``score_outfit``, ``fill_in_the_blank`` =
serving_default).

``OutfitParts`` (``tfrec_fashion.training.serving_parts``) carry each customer's conditioning
vector, each item's input to the scorer (computed once when training ended), the outfit's slots
with the categories that fill each, and the model's ``OutfitScorer``, a graph function of
(customer, the outfit's items). A request's ``item_ids`` has one column per slot, in the parts'
slot order (``slots`` in the export's description). ``fill_in_the_blank`` puts every candidate
item in the blank's column with the same function, one request row at a time (``tf.map_fn``;
[N] scorer rows per request row), masks what may not fill it (items of other slots, the item
the blank held if the request names one, exclusions) and keeps the top k. Unknown customers get
the mean customer's vector, flagged by ``cold_start``; an unknown item id, an item in a slot
its category does not fill, an unknown blank slot and a bad k fail inside the graph with
``InvalidArgumentError`` (INVALID_ARGUMENT when served), each naming the problem.
"""

from __future__ import annotations

import numpy as np
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.training.serving_parts import OutfitParts
from tfrec_fashion_export.module import (broadcast_rows, head_signatures, lookup_table,
                                         top_k_answer, top_k_checks, vectors_or_default,
                                         without_rows)
from tfrec_fashion_serving.contract import FILL_IN_THE_BLANK, OUTFIT, SCORE_OUTFIT


class OutfitModule(tf.Module):
    """The SavedModel's root for the outfit head.

    Args:
        parts: what the trained outfit model contributes.
    """

    def __init__(self, parts: OutfitParts):
        super().__init__(name="outfit")
        self.n_items, self.n_slots = len(parts.item_ids), len(parts.slots)
        self.slot_names = ", ".join(f"{index}: {slot}" for index, slot in enumerate(parts.slots))
        self.user_table = lookup_table(parts.user_ids, "user_ids")
        self.item_table = lookup_table(parts.item_ids, "item_ids")
        self.slot_table = lookup_table(np.asarray(parts.slots), "slots")
        self.item_ids = tf.Variable(parts.item_ids, trainable=False, name="item_id_list")
        self.item_slots = tf.Variable(parts.item_slots(), trainable=False, name="item_slots")
        self.user_vectors = tf.Variable(parts.user_vectors, trainable=False, name="user_vectors")
        self.cold_vector = tf.Variable(parts.cold_start_vector, trainable=False,
                                       name="cold_vector")
        self.item_vectors = tf.Variable(parts.item_vectors, trainable=False, name="item_vectors")
        self.scorer = parts.scorer
        self.scorer_variables = list(parts.scorer.variables)

    def _outfit_rows(self, item_ids: tf.Tensor, what: str, blank: tf.Tensor | None = None
                     ) -> tf.Tensor:
        """Rows int32 [B, S] of an outfit's ids, checked: S columns, known ids, each of its
        column's slot (the ``blank`` column [B], if given, is not read: row -1)."""
        checks = [tf.debugging.assert_equal(
            tf.shape(item_ids)[1], self.n_slots,
            message=f"{what}: item_ids must have one column per slot ({self.slot_names})")]
        with tf.control_dependencies(checks):
            rows = self.item_table.lookup(item_ids)
        columns = tf.range(self.n_slots)[None, :]
        read = (tf.ones_like(rows, tf.bool) if blank is None
                else tf.not_equal(columns, blank[:, None]))
        checks = [
            tf.debugging.assert_equal(tf.logical_or(~read, rows >= 0), True,
                                      message=f"{what}: unknown item id in item_ids"),
            tf.debugging.assert_equal(
                tf.logical_or(~read, tf.equal(tf.gather(self.item_slots, tf.maximum(rows, 0)),
                                              columns)), True,
                message=f"{what}: an item is in a slot its category does not fill (columns "
                        f"are the slots {self.slot_names})"),
        ]
        with tf.control_dependencies(checks):
            return tf.where(read, rows, -1)

    @tf.function(input_signature=SCORE_OUTFIT.input_signature())
    def score_outfit(self, user_id, item_ids):
        """Each customer's score of their outfit [B], higher = better."""
        batch = tf.shape(user_id)[0]
        item_ids = broadcast_rows(item_ids, batch, "item_ids")
        rows = self._outfit_rows(item_ids, "score_outfit")
        user, cold = vectors_or_default(self.user_table, user_id, self.user_vectors,
                                        self.cold_vector)
        return {"scores": self.scorer.score(user, tf.gather(self.item_vectors, rows)),
                "cold_start": cold}

    @tf.function(input_signature=FILL_IN_THE_BLANK.input_signature())
    def fill_in_the_blank(self, user_id, item_ids, blank_slot,
                          k=FILL_IN_THE_BLANK.default("k"),
                          exclude_item_ids=FILL_IN_THE_BLANK.default("exclude_item_ids")):
        """The k best items of the blank's slot for each customer's outfit: [B, K]."""
        batch = tf.shape(user_id)[0]
        item_ids = broadcast_rows(item_ids, batch, "item_ids")
        blank_slot = broadcast_rows(blank_slot, batch, "blank_slot")
        k = broadcast_rows(k, batch, "k")
        exclude_item_ids = broadcast_rows(exclude_item_ids, batch, "exclude_item_ids")
        blank = self.slot_table.lookup(blank_slot)
        checks = [
            *top_k_checks(batch, k, self.n_items),
            tf.debugging.assert_non_negative(
                blank, message=f"fill_in_the_blank: unknown blank_slot; the slots are "
                               f"{self.slot_names}"),
        ]
        with tf.control_dependencies(checks):
            blank = tf.identity(blank)
        rows = self._outfit_rows(item_ids, "fill_in_the_blank", blank)
        user, cold = vectors_or_default(self.user_table, user_id, self.user_vectors,
                                        self.cold_vector)
        # Candidates: the blank's slot's items but the one the blank held (if a known id) and
        # the excluded ("" and unknown ids: -1, ignored), scattered into a [B, N] count.
        allowed = tf.equal(self.item_slots[None, :], blank[:, None])  # [B, N]
        allowed = without_rows(allowed, tf.concat(
            [self.item_table.lookup(item_ids), self.item_table.lookup(exclude_item_ids)], axis=1))
        outfits = tf.gather(self.item_vectors, tf.maximum(rows, 0))  # [B, S, F]

        def score_row(row):
            user_row, outfit, column = row
            n = self.n_items
            # Every item in the blank's column, the outfit's other items where they are.
            place = tf.equal(tf.range(self.n_slots), column)[None, :, None]  # [1, S, 1]
            candidates = tf.where(place, self.item_vectors[:, None, :],
                                  tf.tile(outfit[None], [n, 1, 1]))
            return self.scorer.score(tf.tile(user_row[None, :], [n, 1]), candidates)

        scores = tf.map_fn(score_row, (user, outfits, blank),
                           fn_output_signature=tf.TensorSpec([None], tf.float32))
        return top_k_answer(scores, allowed, k, self.item_ids, cold)

    def signatures(self) -> dict:
        """Signature name -> function (``head_signatures``); ``serving_default`` =
        ``fill_in_the_blank``."""
        return head_signatures(self, OUTFIT)
