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

Index "hamming" (models with binary codes, ``OutfitScorer.codes``: PAN, FHN). The outfit's score
is linear in the blank item's code, y = const + <q, b_c>, so the candidates are the ``rerank``
allowed items whose codes are nearest to sign(q) in Hamming distance (packed words,
``BitwiseXor`` and ``PopulationCount``), and only they are scored exactly, as above: the answer's
scores are ``score_outfit``'s. User-free codes (FHN: no user-aware attention) are computed once
at export and searched by ``layers.hamming.HammingTopK``; PAN's codes depend on the customer
through the attention, so each request computes its customer's codes of the blank slot's items
(the item encoder once per item, against S times per item for the exact scores) and ranks them
the same way. k may not exceed ``rerank``. The export measures recall@10 against the exact
answer (``recall_against_exact``).
"""

from __future__ import annotations

import numpy as np
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.layers.hamming import HammingTopK, hamming_distances, pack_codes
from tfrec_fashion.training.serving_parts import OutfitParts
from tfrec_fashion_export.ann_index import recall_at_k
from tfrec_fashion_export.index import refuse_low_recall
from tfrec_fashion_export.module import (broadcast_rows, head_signatures, lookup_table,
                                         top_k_answer, top_k_checks, vectors_or_default,
                                         without_rows)
from tfrec_fashion_serving.contract import DEFAULT_K, FILL_IN_THE_BLANK, OUTFIT, SCORE_OUTFIT

INDEXES = ("brute_force", "hamming")
DEFAULT_RERANK = 100  # candidates the Hamming ranking hands to the exact scorer
CODE_BATCH = 4096


class OutfitModule(tf.Module):
    """The SavedModel's root for the outfit head.

    Args:
        parts: what the trained outfit model contributes.
    """

    def __init__(self, parts: OutfitParts, index: str = "brute_force",
                 index_params: dict | None = None):
        super().__init__(name="outfit")
        if index not in INDEXES:
            raise ValueError(f"index must be one of {INDEXES} for the outfit head. Received: "
                             f"index={index!r}")
        params = dict(index_params or {})
        if set(params) - ({"rerank"} if index == "hamming" else set()):
            raise ValueError(f"index_params {sorted(params)}: the outfit head's Hamming index "
                             "takes only rerank, its exact index none")
        self.hamming = index == "hamming"
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
        if self.hamming:
            self._build_hamming(parts, int(params.get("rerank", DEFAULT_RERANK)))

    def _build_hamming(self, parts: OutfitParts, rerank: int) -> None:
        self.codes = parts.scorer.codes
        if self.codes is None:
            raise ValueError(f"index='hamming': the model {parts.info.get('model', '')!r} has no "
                             "binary codes (OutfitScorer.codes); export it with the exact index")
        if isinstance(rerank, bool) or rerank < DEFAULT_K:
            raise ValueError(f"index_params: rerank must be an integer >= {DEFAULT_K} (a "
                             f"request without k asks for {DEFAULT_K}). Received: {rerank!r}")
        self.rerank = min(rerank, self.n_items)
        self.code_variables = list(self.codes.variables)
        self.hamming_index = None
        if self.codes.user_free:  # every item's code once, packed: the request reads words
            slots = np.maximum(self.item_slots.numpy(), 0)  # items of no slot: never allowed
            user = parts.cold_start_vector.astype(np.float32)[None]  # read by no code here
            codes = np.concatenate([
                self.codes.item_codes(np.repeat(user, len(rows), 0), parts.item_vectors[rows],
                                      slots[rows]).numpy()
                for rows in np.split(np.arange(self.n_items),
                                     range(CODE_BATCH, self.n_items, CODE_BATCH))])
            self.hamming_index = HammingTopK(k=self.rerank).index(codes)

    def index_report(self, parts: OutfitParts, min_recall: float | None) -> dict:
        """The Hamming index's description with its recall@10 against exact scores (printed);
        raises, so that nothing is exported, if that recall is below ``min_recall``."""
        described = {"kind": "hamming", "bits": self.codes.bits, "rerank": self.rerank,
                     "codes": "precomputed, packed" if self.codes.user_free
                     else "computed per request (user-aware attention)"}
        recall = self.recall_against_exact(parts)
        print(f"hamming index: {described['bits']}-bit codes ({described['codes']}), the "
              f"nearest {described['rerank']} re-scored exactly: fill_in_the_blank "
              f"recall@{recall['k']} against exact scores {recall['recall']:.3f} on "
              f"{recall['queries']} random outfits")
        refuse_low_recall(recall, min_recall, "the Hamming index",
                          remedy="re-rank more candidates (rerank)")
        return {**described, "recall_at_10": recall}

    def recall_against_exact(self, parts: OutfitParts, queries: int = 200, k: int = 10,
                             seed: int = 0) -> dict:
        """recall@k of ``fill_in_the_blank`` against ``exact_fill_in_the_blank`` on random
        (known customer, outfit of one item per slot, blank slot) queries of ``parts``."""
        rng = np.random.default_rng(seed)
        k = min(k, self.rerank)
        slot_of_item = parts.item_slots()
        users = parts.user_ids[rng.integers(len(parts.user_ids), size=queries)]
        outfits = np.stack([parts.item_ids[rng.choice(np.flatnonzero(slot_of_item == slot),
                                                      queries)]
                            for slot in range(self.n_slots)], axis=1)
        blanks = np.asarray(parts.slots)[rng.integers(self.n_slots, size=queries)]
        request = (users, outfits, blanks, np.full(queries, k, np.int32),
                   np.full((queries, 1), ""))
        approximate = self.fill_in_the_blank(*request)["item_ids"].numpy()
        exact = self.exact_fill_in_the_blank(*request)["item_ids"].numpy()
        return {"k": k, "queries": queries, "recall": recall_at_k(approximate, exact)}

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
        return self._fill(user_id, item_ids, blank_slot, k, exclude_item_ids,
                          hamming=self.hamming)

    def exact_fill_in_the_blank(self, user_id, item_ids, blank_slot, k, exclude_item_ids):
        """``fill_in_the_blank`` by exact scores whatever the index (the Hamming index's recall
        is measured against it); eager, not a signature."""
        return self._fill(*(tf.convert_to_tensor(value) for value in
                            (user_id, item_ids, blank_slot, k, exclude_item_ids)), hamming=False)

    def _fill(self, user_id, item_ids, blank_slot, k, exclude_item_ids, hamming: bool):
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
        if hamming:
            checks.append(tf.debugging.assert_less_equal(
                k, self.rerank, message=f"fill_in_the_blank: k must be at most {self.rerank}, "
                                        "the re-rank depth of the Hamming index (export with "
                                        "a larger rerank for more)"))
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
        if not hamming:  # every item of the catalogue in the blank, masked
            candidates = tf.tile(tf.range(self.n_items)[None, :], [batch, 1])
        else:
            candidates = self._hamming_candidates(user, outfits, blank, allowed)
            allowed = tf.gather(allowed, tf.maximum(candidates, 0), batch_dims=1) & (
                candidates >= 0)

        def score_row(row):
            user_row, outfit, column, items = row
            n = tf.shape(items)[0]
            # Each candidate in the blank's column, the outfit's other items where they are.
            place = tf.equal(tf.range(self.n_slots), column)[None, :, None]  # [1, S, 1]
            filled = tf.where(place, tf.gather(self.item_vectors, tf.maximum(items, 0))[:, None],
                              tf.tile(outfit[None], [n, 1, 1]))
            return self.scorer.score(tf.tile(user_row[None, :], [n, 1]), filled)

        scores = tf.map_fn(score_row, (user, outfits, blank, candidates),
                           fn_output_signature=tf.TensorSpec([None], tf.float32))
        return top_k_answer(scores, allowed, k, self.item_ids, cold, rows=candidates)

    def _hamming_candidates(self, user, outfits, blank, allowed) -> tf.Tensor:
        """The ``rerank`` allowed items nearest to sign(q) by Hamming distance, int32 [B, R]
        (-1 past the allowed ones): from the packed table of user-free codes, or from each
        customer's codes of the blank's slot computed here."""
        query = self.codes.query(user, outfits, blank)
        if self.codes.user_free:
            return self.hamming_index.search(query, self.rerank, allowed=allowed)[1]

        def nearest(row):
            user_row, query_row, allowed_row = row
            items = tf.cast(tf.where(allowed_row)[:, 0], tf.int32)
            n = tf.shape(items)[0]
            codes = self.codes.item_codes(tf.tile(user_row[None], [n, 1]),
                                          tf.gather(self.item_vectors, items),
                                          tf.gather(self.item_slots, items))
            distances = hamming_distances(pack_codes(query_row[None]), pack_codes(codes))[0]
            _, best = tf.math.top_k(-distances, tf.minimum(self.rerank, n))
            found = tf.gather(items, best)
            return tf.pad(found, [[0, self.rerank - tf.shape(found)[0]]], constant_values=-1)

        return tf.map_fn(nearest, (user, query, allowed),
                         fn_output_signature=tf.TensorSpec([self.rerank], tf.int32))

    def signatures(self) -> dict:
        """Signature name -> function (``head_signatures``); ``serving_default`` =
        ``fill_in_the_blank``."""
        return head_signatures(self, OUTFIT)
