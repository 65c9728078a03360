"""What a trained run hands to serving, written into its run directory when training ends.

Export reads only this (``tfrec-fashion export RUN_DIR``): it never rebuilds the dataset, re-runs
a recipe's ``prepare`` or extracts item features again, so exporting a VBPR run on
EfficientNet-Lite0 features costs a SavedModel write, not a pass of the CNN over the catalogue.

A model family serves through a **head** (``tfrec_fashion_serving.contract``): its parts are one
of the dataclasses here, each naming its head in ``HEAD``:

- :class:`RetrievalParts` (head "retrieval": ``recommend`` / ``score`` / ``user_query`` /
  ``embed_item`` / ``recommend_new_customer``): user and item vectors whose inner products are
  the model's scores, what each user bought, and optionally an :class:`ItemEmbedder` for new
  items and a :class:`NewCustomerQuery` for new customers (Partial Dual's fold-in, StyNet's
  customer tower on survey answers and votes). Every model
  trained on interactions or ratings today.
- :class:`CompatibilityParts` (head "compatibility": ``score_pairs`` / ``complete_pair``): each
  customer's conditioning vector, each item's input to the scorer, and a :class:`PairScorer`
  (a graph function of customer, item and partner). PSA-Net and its kin.
- :class:`OutfitParts` (head "outfit": ``score_outfit`` / ``fill_in_the_blank``): the same
  for whole outfits, one item per slot, scored by an :class:`OutfitScorer` (a graph function of
  customer and the outfit's items). PAN and its kin.
- :class:`LookParts` (head "look": ``similar`` / ``complementary``, item to item, no
  customer): each item's vector in a space of alike items and in a style space of items that
  complete each other, and optionally two :class:`ItemEmbedder` of a new product's image into
  them. The complete-the-look models.
- :class:`GenerationParts` (head "generation": ``design``, new images a customer would like):
  a conditional GAN's generator and discriminator (:class:`ConditionalGan`), DVBPR's image path
  Phi (an :class:`ItemEmbedder`) and its customers' theta_u, with the ascent's
  :class:`DesignSettings`. The GAN design model (paper 003).

Layout (written atomically: ``serving.tmp-*`` then one rename)::

    <run_dir>/serving/parts.json   the head, the facts written to the export's description, and
                                   how to call the saved functions
    <run_dir>/serving/arrays.npz   ids, categories, vectors (and what each user bought)
    <run_dir>/serving/embedder/    SavedModel: ``call(content)`` -> the item's row (retrieval
                                   models that see item content)
    <run_dir>/serving/new_customer/
                                   SavedModel: ``call(voted_item_ids, votes)`` -> a new
                                   customer's query (retrieval models that fold customers in)
    <run_dir>/serving/scorer/      SavedModel: ``call(user, item, partner)`` -> scores
                                   (compatibility), ``call(user, items)`` (outfit)
    <run_dir>/serving/attention/   SavedModel: ``call(user)`` -> subspace weights (compatibility
                                   models that have them: PSA-Net)
    <run_dir>/serving/similar_embedder/, style_embedder/
                                   SavedModels: ``call(image)`` -> a new product's similar /
                                   style vector (look models with an image path)
    <run_dir>/serving/generator/, discriminator/, phi/
                                   SavedModels: ``call(z, category)`` -> images,
                                   ``call(images, category)`` -> realism, ``call(image)`` -> Phi
                                   (the generation head)
    <run_dir>/serving/thumbnails.* every item's image on one sheet, for the browse page (runs
                                   whose dataset has images; ``thumbnails.py``)

A recipe says what it serves with ``Recipe.serving_parts(model)``; the harness calls
:func:`save_parts` before it writes ``metrics.json`` (the finished-run marker), and export calls
:func:`load_parts`. Adding a head is one dataclass here (its arrays and functions) plus the
head's module in ``export/heads/``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import scipy.sparse
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.errors import ConfigError
from tfrec_fashion.training.thumbnails import write_thumbnails

DIRECTORY = "serving"
_PARTS_FILE = "parts.json"
_ARRAYS_FILE = "arrays.npz"


@dataclasses.dataclass
class ItemEmbedder:
    """How a trained model gives a new item its vector from content alone (the export's
    ``embed_item`` signature), so new items are indexed without retraining.

    Args:
        input_name: the signature's input, "image" or "features".
        input_spec: its ``tf.TensorSpec``, batch dimension None, e.g. float32 [None, 32, 32, 3].
        embed: graph-safe function, input [B, ...] -> float32 [B, D], the item's row in the
            space of ``item_vectors`` (the index), raw input in, everything (standardisation,
            backbone) inside.
        variables: every variable ``embed`` reads, so the SavedModel keeps them.
    """

    input_name: str
    input_spec: tf.TensorSpec
    embed: Callable[[tf.Tensor], tf.Tensor]
    variables: Sequence[tf.Variable]


@dataclasses.dataclass
class NewCustomerQuery:
    """How a trained model gives a customer it was not trained on a query vector from their
    first votes (the export's ``recommend_new_customer`` signature), so a newcomer is served
    personally without retraining (Partial Dual: the fold-in, ``models.partial_dual``).

    Args:
        query: graph-safe function (voted_item_ids string [B, M], votes float32 [B, M]) ->
            float32 [B, D], each row's query in the space of ``user_vectors`` (what
            ``recommend`` searches with for a known customer). An id "" is padding (its vote
            ignored), so rows hold different numbers of votes; a row with none gets the
            model's cold-start query, never an error. An unknown item id, a vote outside
            ``rating_range`` and shapes that differ fail inside the graph
            (``InvalidArgumentError`` naming them).
        rating_range: (low, high), the votes it accepts.
        variables: every trackable ``query`` reads (variables, lookup tables, modules), so
            the SavedModel keeps them.
        description: one line for the export's description (how the query is computed).
        survey: for a model whose customer tower reads survey answers (StyNet): question ->
            its known answers, in the model's order; then ``query`` also takes
            (survey_questions string [B, Q], survey_answers string [B, Q]), "" questions
            padding, "" answers no answer, an unknown question or answer an
            ``InvalidArgumentError`` naming it, and a row with votes or answers is not the
            cold start. Empty (Partial Dual): ``query`` takes the votes alone.
    """

    query: Callable[..., tf.Tensor]
    rating_range: tuple[float, float]
    variables: Sequence[Any]
    description: str = ""
    survey: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    INPUT_SIGNATURE: ClassVar[list[tf.TensorSpec]] = [
        tf.TensorSpec([None, None], tf.string, "voted_item_ids"),
        tf.TensorSpec([None, None], tf.float32, "votes")]
    SURVEY_SIGNATURE: ClassVar[list[tf.TensorSpec]] = [
        tf.TensorSpec([None, None], tf.string, "survey_questions"),
        tf.TensorSpec([None, None], tf.string, "survey_answers")]

    def __post_init__(self) -> None:
        low, high = (float(value) for value in self.rating_range)
        if not low <= high:
            raise ValueError(f"rating_range must be (low, high) with low <= high. Received: "
                             f"{self.rating_range!r}")
        self.rating_range = (low, high)
        self.survey = {str(question): [str(answer) for answer in answers]
                       for question, answers in dict(self.survey or {}).items()}

    def input_signature(self) -> list[tf.TensorSpec]:
        """``query``'s: the votes, and the survey's two inputs where it reads one."""
        return [*self.INPUT_SIGNATURE, *(self.SURVEY_SIGNATURE if self.survey else [])]

    def vectors(self, votes: Sequence[Sequence[tuple[str, float]]],
                surveys: Sequence[Mapping[str, str]] | None = None) -> np.ndarray:
        """float32 [B, D]: ``query`` of B customers, each given by a list of (item id, vote)
        pairs and, for a model that reads a survey, a question -> answer mapping (None: no
        answers), padded with "" as the served ``recommend_new_customer`` pads them. A
        customer with neither gets the cold-start query; bad ids, answers or votes are the
        query's ``InvalidArgumentError``; surveys for a model without one a ``ValueError``."""
        rows = [list(row) for row in votes]
        if surveys is not None and not self.survey and any(surveys):
            raise ValueError("surveys: this model reads no survey answers (Partial Dual folds "
                             "customers in from their votes alone)")

        def table(cells: list[list], fill, dtype) -> np.ndarray:
            """[B, W] of rows padded with ``fill`` to the longest (W = 0 for none)."""
            width = max([0, *(len(row) for row in cells)])
            return np.array([row + [fill] * (width - len(row)) for row in cells],
                            dtype).reshape(len(cells), width)

        inputs = [tf.constant(table([[str(item) for item, _ in row] for row in rows], "",
                                    object), tf.string),
                  tf.constant(table([[float(vote) for _, vote in row] for row in rows], 0.0,
                                    np.float32))]
        if self.survey:
            answers = [dict(row) for row in (surveys or [{}] * len(rows))]
            inputs += [tf.constant(table([[str(q) for q in row] for row in answers], "",
                                         object), tf.string),
                       tf.constant(table([[str(a) for a in row.values()] for row in answers],
                                         "", object), tf.string)]
        return self.query(*inputs).numpy()


@dataclasses.dataclass
class PairScorer:
    """A compatibility model's score of (customer, item, partner) triples, as a graph function.

    Args:
        user_dim: E, the size of a customer's conditioning vector (0: not personalised).
        item_dim: F, the size of an item's input to the scorer.
        score: graph-safe function (user float32 [B, E], item float32 [B, F], partner float32
            [B, F]) -> float32 [B], higher = more compatible.
        variables: every variable ``score`` (and ``attention``) reads.
        attention: optional graph-safe function, user float32 [B, E] -> float32 [B, S], the
            customer's weights over the model's subspaces (PSA-Net), served as ``score_pairs``'
            ``attention_weights``; None for a model without them.
    """

    user_dim: int
    item_dim: int
    score: Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]
    variables: Sequence[tf.Variable]
    attention: Callable[[tf.Tensor], tf.Tensor] | None = None

    def input_signature(self) -> list[tf.TensorSpec]:
        return [self.user_spec(), tf.TensorSpec([None, self.item_dim], tf.float32, "item"),
                tf.TensorSpec([None, self.item_dim], tf.float32, "partner")]

    def user_spec(self) -> tf.TensorSpec:
        return tf.TensorSpec([None, self.user_dim], tf.float32, "user")


@dataclasses.dataclass
class OutfitScorer:
    """An outfit model's score of (customer, one item per slot), as a graph function.

    Args:
        user_dim: E, the size of a customer's conditioning vector (0: not personalised).
        item_dim: F, the size of an item's input to the scorer (e.g. its flattened feature
            map: the scorer may run the item encoder, user-aware, inside).
        n_slots: S, the outfit's slots, in the parts' ``slots`` order.
        score: graph-safe function (user float32 [B, E], items float32 [B, S, F]) ->
            float32 [B], higher = a better outfit for that customer.
        variables: every variable ``score`` reads.
        codes: the model's binary codes (``OutfitCodes``), for Hamming ranking; None for a
            model without them.
    """

    user_dim: int
    item_dim: int
    n_slots: int
    score: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    variables: Sequence[tf.Variable]
    codes: "OutfitCodes | None" = None

    def input_signature(self) -> list[tf.TensorSpec]:
        return [tf.TensorSpec([None, self.user_dim], tf.float32, "user"),
                tf.TensorSpec([None, self.n_slots, self.item_dim], tf.float32, "items")]


@dataclasses.dataclass
class OutfitCodes:
    """A binary-code outfit model's codes, for ``fill_in_the_blank`` by Hamming ranking (the
    export's ``index="hamming"``): the score of an outfit is linear in the code of the item in
    its blank slot, y = const + <q, b_c>, so the items nearest to sign(q) in Hamming distance
    are the candidates the exact scorer re-ranks.

    Args:
        bits: K, the code length.
        item_codes: graph-safe (user float32 [B, E], items float32 [B, F], slot int32 [B]) ->
            float32 [B, K] in {-1, +1}, each item's code in its slot for that customer.
        query: graph-safe (user [B, E], items [B, S, F], blank int32 [B]) -> q float32 [B, K]
            (the blank's item is not read).
        user_free: whether ``item_codes`` ignores the customer (FHN, no user-aware attention):
            then the export computes every item's code once and keeps them packed.
        variables: every variable the two functions read.
    """

    bits: int
    item_codes: Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]
    query: Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]
    user_free: bool
    variables: Sequence[tf.Variable]

    def signatures(self, scorer: OutfitScorer) -> dict[str, list[tf.TensorSpec]]:
        """Input signatures of ``item_codes`` and ``query`` for ``scorer``'s shapes."""
        user = tf.TensorSpec([None, scorer.user_dim], tf.float32, "user")
        return {"item_codes": [user, tf.TensorSpec([None, scorer.item_dim], tf.float32, "items"),
                               tf.TensorSpec([None], tf.int32, "slot")],
                "query": [*scorer.input_signature(), tf.TensorSpec([None], tf.int32, "blank")]}


def _check_ids(name: str, ids: np.ndarray) -> None:
    if len(np.unique(ids)) != len(ids) or (ids == "").any():
        raise ValueError(f"{name} must be unique and non-empty")


def _catalogue(user_ids, item_ids, item_categories) -> tuple[np.ndarray, ...]:
    """Every head's ids as str arrays, unique and non-empty, with one category per item."""
    user_ids, item_ids, item_categories = (np.asarray(values).astype(str) for values in
                                           (user_ids, item_ids, item_categories))
    if len(item_categories) != len(item_ids):
        raise ValueError(f"item_categories must have {len(item_ids)} entries. Received: "
                         f"{len(item_categories)}")
    _check_ids("user_ids", user_ids)
    _check_ids("item_ids", item_ids)
    return user_ids, item_ids, item_categories


def _check_finite(**arrays: np.ndarray) -> None:
    for name, values in arrays.items():
        if not np.isfinite(values).all():
            raise ValueError(f"{name} must be finite: the model holds NaN or infinity")


@dataclasses.dataclass
class RetrievalParts:
    """What an inner-product model contributes to an export (head "retrieval").

    Args:
        user_ids: str [U], the dataset's user ids, row order of ``user_vectors``.
        item_ids: str [N], unique, row order of ``item_vectors``.
        item_categories: str [N].
        user_vectors: float32 [U, D].
        item_vectors: float32 [N, D]; the model's score of (u, i) is their inner product.
        embedder: how a new item gets its row from content, or None (id-only models).
        seen: what each user already bought, a CSR matrix [U, N] (nonzeros = seen), or None;
            ``recommend`` leaves those items out unless asked not to (``exclude_seen``).
        info: JSON-able facts written to ``assets.extra/tfrec_fashion.json``.
        new_customer: how a customer the model was not trained on gets a query from their
            votes (``recommend_new_customer``), or None (models that cannot: the signature is
            not exported).
    """

    HEAD: ClassVar[str] = "retrieval"

    user_ids: np.ndarray
    item_ids: np.ndarray
    item_categories: np.ndarray
    user_vectors: np.ndarray
    item_vectors: np.ndarray
    embedder: ItemEmbedder | None = None
    seen: scipy.sparse.csr_matrix | None = None
    info: dict = dataclasses.field(default_factory=dict)
    new_customer: NewCustomerQuery | None = None

    def __post_init__(self) -> None:
        self.user_ids, self.item_ids, self.item_categories = _catalogue(
            self.user_ids, self.item_ids, self.item_categories)
        self.user_vectors = np.asarray(self.user_vectors, np.float32)
        self.item_vectors = np.asarray(self.item_vectors, np.float32)
        n_users, n_items = len(self.user_ids), len(self.item_ids)
        if self.user_vectors.ndim != 2 or self.user_vectors.shape[0] != n_users:
            raise ValueError(f"user_vectors must be [{n_users}, D] (one row per user id). "
                             f"Received: shape={self.user_vectors.shape}")
        if self.item_vectors.shape != (n_items, self.user_vectors.shape[1]):
            raise ValueError(f"item_vectors must be [{n_items}, {self.user_vectors.shape[1]}] "
                             f"(one row per item id, the users' D). Received: "
                             f"shape={self.item_vectors.shape}")
        if self.seen is None:
            self.seen = scipy.sparse.csr_matrix((n_users, n_items), dtype=np.int8)
        self.seen = scipy.sparse.csr_matrix(self.seen)
        if self.seen.shape != (n_users, n_items):
            raise ValueError(f"seen must be [{n_users}, {n_items}] (users x items). Received: "
                             f"shape={self.seen.shape}")
        self.seen.sort_indices()
        _check_finite(user_vectors=self.user_vectors, item_vectors=self.item_vectors)

    @property
    def cold_start_query(self) -> np.ndarray:
        """The query of an unknown user: the mean trained user vector ("the average customer"),
        float32 [D]."""
        return self.user_vectors.mean(axis=0)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"user_ids": self.user_ids, "item_ids": self.item_ids,
                "item_categories": self.item_categories, "user_vectors": self.user_vectors,
                "item_vectors": self.item_vectors, "seen_indptr": self.seen.indptr,
                "seen_indices": self.seen.indices}

    def functions(self) -> dict[str, tuple[Callable, list[tf.TensorSpec], Sequence]]:
        functions = {}
        if self.embedder is not None:
            functions["embedder"] = (self.embedder.embed, [self.embedder.input_spec],
                                     self.embedder.variables)
        if self.new_customer is not None:
            functions["new_customer"] = (self.new_customer.query,
                                         self.new_customer.input_signature(),
                                         self.new_customer.variables)
        return functions

    def describe_functions(self) -> dict[str, Any]:
        described: dict[str, Any] = {"embed_input": None}
        if self.embedder is not None:
            described = {"embed_input": self.embedder.input_name,
                         "embed_shape": self.embedder.input_spec.shape.as_list()}
        if self.new_customer is not None:
            described["new_customer"] = {"rating_range": list(self.new_customer.rating_range),
                                         "description": self.new_customer.description}
            if self.new_customer.survey:  # Partial Dual's parts.json stays as it was
                described["new_customer"]["survey"] = self.new_customer.survey
        return described

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray], functions: dict[str, Any],
                described: dict[str, Any], info: dict) -> "RetrievalParts":
        n_users, n_items = len(arrays["user_ids"]), len(arrays["item_ids"])
        seen = scipy.sparse.csr_matrix(
            (np.ones(len(arrays["seen_indices"]), np.int8), arrays["seen_indices"],
             arrays["seen_indptr"]), shape=(n_users, n_items))
        embedder = None
        if "embedder" in functions:
            call, variables = functions["embedder"]
            spec = tf.TensorSpec(described["embed_shape"], tf.float32, described["embed_input"])
            embedder = ItemEmbedder(described["embed_input"], spec, call, variables)
        new_customer = None
        if "new_customer" in functions:  # parts written before it existed have none
            call, variables = functions["new_customer"]
            new_customer = NewCustomerQuery(call, described["new_customer"]["rating_range"],
                                            variables,
                                            described["new_customer"]["description"],
                                            described["new_customer"].get("survey", {}))
        return cls(arrays["user_ids"], arrays["item_ids"], arrays["item_categories"],
                   arrays["user_vectors"], arrays["item_vectors"], embedder, seen, info,
                   new_customer)


class _ScoredByCustomer:
    """What the compatibility and outfit parts share: customers' conditioning vectors and items'
    inputs to a scorer with ``user_dim`` and ``item_dim``, checked against it; the mean
    customer's vector for an unknown one."""

    def _check_vectors(self) -> None:
        self.user_ids, self.item_ids, self.item_categories = _catalogue(
            self.user_ids, self.item_ids, self.item_categories)
        self.user_vectors = np.asarray(self.user_vectors, np.float32).reshape(
            len(self.user_ids), -1)
        self.item_vectors = np.asarray(self.item_vectors, np.float32)
        n_items = len(self.item_ids)
        if self.item_vectors.shape != (n_items, self.scorer.item_dim):
            raise ValueError(f"item_vectors must be [{n_items}, {self.scorer.item_dim}] (one row "
                             f"per item id, the scorer's F). Received: "
                             f"shape={self.item_vectors.shape}")
        if self.user_vectors.shape[1] != self.scorer.user_dim:
            raise ValueError(f"user_vectors must be [{len(self.user_ids)}, "
                             f"{self.scorer.user_dim}] (the scorer's E). Received: "
                             f"shape={self.user_vectors.shape}")
        _check_finite(user_vectors=self.user_vectors, item_vectors=self.item_vectors)

    @property
    def cold_start_vector(self) -> np.ndarray:
        """An unknown customer's conditioning vector: the mean customer's, float32 [E]."""
        if len(self.user_vectors) == 0:
            return np.zeros(self.scorer.user_dim, np.float32)
        return self.user_vectors.mean(axis=0)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"user_ids": self.user_ids, "user_vectors": self.user_vectors,
                "item_ids": self.item_ids, "item_categories": self.item_categories,
                "item_vectors": self.item_vectors}


@dataclasses.dataclass
class CompatibilityParts(_ScoredByCustomer):
    """What a pair-compatibility model contributes to an export (head "compatibility").

    Args:
        user_ids: str [U], the customers the model knows.
        user_vectors: float32 [U, E], each customer's conditioning vector (E = 0 for a model
            that is not personalised); an unknown customer gets their mean, flagged.
        item_ids: str [N], unique.
        item_categories: str [N].
        item_vectors: float32 [N, F], each item's input to the scorer (its features, or its
            backbone's output: computed once at the end of training).
        complements: category -> the categories its partners come from (e.g. top -> [bottom]),
            what ``complete_pair`` searches when the request names no category.
        scorer: the model's score of (customer vector, item row, partner row).
        info: JSON-able facts written to ``assets.extra/tfrec_fashion.json``.
    """

    HEAD: ClassVar[str] = "compatibility"

    user_ids: np.ndarray
    user_vectors: np.ndarray
    item_ids: np.ndarray
    item_categories: np.ndarray
    item_vectors: np.ndarray
    complements: dict[str, list[str]]
    scorer: PairScorer
    info: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_vectors()
        known = set(self.item_categories)
        self.complements = {str(c): [str(p) for p in partners]
                            for c, partners in self.complements.items()}
        for category, partners in self.complements.items():
            unknown = sorted({category, *partners} - known)
            if unknown:
                raise ValueError(f"complements name categories no item has: {unknown}")

    def functions(self) -> dict[str, tuple[Callable, list[tf.TensorSpec], Sequence]]:
        functions = {"scorer": (self.scorer.score, self.scorer.input_signature(),
                                self.scorer.variables)}
        if self.scorer.attention is not None:
            functions["attention"] = (self.scorer.attention, [self.scorer.user_spec()],
                                      self.scorer.variables)
        return functions

    def describe_functions(self) -> dict[str, Any]:
        return {"complements": self.complements, "user_dim": self.scorer.user_dim,
                "item_dim": self.scorer.item_dim}

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray], functions: dict[str, Any],
                described: dict[str, Any], info: dict) -> "CompatibilityParts":
        call, variables = functions["scorer"]
        attention, attention_variables = functions.get("attention", (None, []))
        scorer = PairScorer(described["user_dim"], described["item_dim"], call,
                            [*variables, *attention_variables], attention)
        return cls(arrays["user_ids"], arrays["user_vectors"], arrays["item_ids"],
                   arrays["item_categories"], arrays["item_vectors"], described["complements"],
                   scorer, info)


@dataclasses.dataclass
class OutfitParts(_ScoredByCustomer):
    """What an outfit model contributes to an export (head "outfit").

    Args:
        user_ids: str [U], the customers the model knows.
        user_vectors: float32 [U, E], each customer's conditioning vector; an unknown customer
            gets their mean, flagged.
        item_ids: str [N], unique.
        item_categories: str [N].
        item_vectors: float32 [N, F], each item's input to the scorer (computed once).
        slots: the outfit's slots in order (e.g. top, bottom, shoes); an item fills slot s
            when its category is in ``slot_categories[s]``.
        slot_categories: slot -> the item categories that fill it (default: its own name).
        scorer: the model's score of (customer vector, the outfit's item rows).
        info: JSON-able facts written to ``assets.extra/tfrec_fashion.json``.
    """

    HEAD: ClassVar[str] = "outfit"

    user_ids: np.ndarray
    user_vectors: np.ndarray
    item_ids: np.ndarray
    item_categories: np.ndarray
    item_vectors: np.ndarray
    slots: list[str]
    scorer: OutfitScorer
    slot_categories: dict[str, list[str]] | None = None
    info: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_vectors()
        self.slots = [str(slot) for slot in self.slots]
        if len(self.slots) != self.scorer.n_slots or len(set(self.slots)) != len(self.slots):
            raise ValueError(f"slots must be {self.scorer.n_slots} distinct names (the "
                             f"scorer's S). Received: {self.slots}")
        self.slot_categories = {slot: [str(c) for c in (self.slot_categories or {}).get(
            slot, [slot])] for slot in self.slots}
        for slot, categories in self.slot_categories.items():
            if not np.isin(categories, self.item_categories).any():
                raise ValueError(f"no item fills slot {slot!r} (categories {categories})")

    def item_slots(self) -> np.ndarray:
        """Each item's slot index, int32 [N] (-1: fills no slot)."""
        rows = np.full(len(self.item_ids), -1, np.int32)
        for index, slot in enumerate(self.slots):
            rows[np.isin(self.item_categories, self.slot_categories[slot])] = index
        return rows

    def functions(self) -> dict[str, tuple[Callable, list[tf.TensorSpec], Sequence]]:
        functions = {"scorer": (self.scorer.score, self.scorer.input_signature(),
                                self.scorer.variables)}
        codes = self.scorer.codes
        if codes is not None:
            signatures = codes.signatures(self.scorer)
            functions["item_codes"] = (codes.item_codes, signatures["item_codes"],
                                       codes.variables)
            functions["code_query"] = (codes.query, signatures["query"], codes.variables)
        return functions

    def describe_functions(self) -> dict[str, Any]:
        codes = self.scorer.codes
        return {"slots": self.slots, "slot_categories": self.slot_categories,
                "user_dim": self.scorer.user_dim, "item_dim": self.scorer.item_dim,
                "codes": None if codes is None else {"bits": codes.bits,
                                                     "user_free": codes.user_free}}

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray], functions: dict[str, Any],
                described: dict[str, Any], info: dict) -> "OutfitParts":
        call, variables = functions["scorer"]
        codes = None
        if described.get("codes"):
            (item_codes, code_variables), (query, query_variables) = (
                functions["item_codes"], functions["code_query"])
            # Both loaded functions' variables: a loaded function whose variables nothing
            # references any more cannot run.
            codes = OutfitCodes(described["codes"]["bits"], item_codes, query,
                                described["codes"]["user_free"],
                                [*code_variables, *query_variables])
        scorer = OutfitScorer(described["user_dim"], described["item_dim"],
                              len(described["slots"]), call, variables, codes)
        return cls(arrays["user_ids"], arrays["user_vectors"], arrays["item_ids"],
                   arrays["item_categories"], arrays["item_vectors"], described["slots"],
                   scorer, described["slot_categories"], info)


@dataclasses.dataclass
class LookParts:
    """What a complete-the-look model contributes to an export (head "look": ``similar`` and
    ``complementary``; item to item, no customer, so a shopper we know nothing about is served
    from the product they look at).

    Args:
        item_ids: str [N], unique.
        item_categories: str [N].
        similar_vectors: float32 [N, Ds], each item where alike items lie close (e.g. a CNN's
            pooled features); the head L2-normalises them, so ``similar`` ranks by cosine.
        style_vectors: float32 [N, Dc], each item's style embedding, where items that complete
            each other lie close (the compatibility model's, trained with a triplet loss);
            ``complementary`` ranks them by cosine too.
        similar_embedder: how a new product's image gets its similar vector: an
            ``ItemEmbedder`` with input "image" float32 [None, H, W, 3] in [0, 1] -> [B, Ds];
            None (with ``style_embedder`` None): queries by item id only.
        style_embedder: the same for its style vector, [B, Dc], on the same input spec.
        complements: category -> the categories that complete it (e.g. top -> [bottom,
            shoes]), what ``complementary`` searches when the request names no category;
            default every other category of the catalogue.
        info: JSON-able facts written to ``assets.extra/tfrec_fashion.json``.
    """

    HEAD: ClassVar[str] = "look"

    item_ids: np.ndarray
    item_categories: np.ndarray
    similar_vectors: np.ndarray
    style_vectors: np.ndarray
    similar_embedder: ItemEmbedder | None = None
    style_embedder: ItemEmbedder | None = None
    complements: dict[str, list[str]] | None = None
    info: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _, self.item_ids, self.item_categories = _catalogue([], self.item_ids,
                                                            self.item_categories)
        for name in ("similar_vectors", "style_vectors"):
            vectors = np.asarray(getattr(self, name), np.float32)
            if vectors.ndim != 2 or len(vectors) != len(self.item_ids):
                raise ValueError(f"{name} must be [{len(self.item_ids)}, D] (one row per item "
                                 f"id). Received: shape={vectors.shape}")
            _check_finite(**{name: vectors})
            if (np.linalg.norm(vectors, axis=1) == 0).any():
                raise ValueError(f"{name} has zero rows: a cosine needs a direction")
            setattr(self, name, vectors)
        categories = sorted(set(self.item_categories))
        complements = self.complements if self.complements is not None else {
            category: [other for other in categories if other != category]
            for category in categories}
        self.complements = {str(c): [str(p) for p in partners]
                            for c, partners in complements.items()}
        unknown = sorted({c for c, partners in self.complements.items()
                          for c in (c, *partners)} - set(categories))
        if unknown:
            raise ValueError(f"complements name categories no item has: {unknown}")
        self._check_embedders()

    def _check_embedders(self) -> None:
        embedders = (self.similar_embedder, self.style_embedder)
        if (embedders[0] is None) != (embedders[1] is None):
            raise ValueError("give both similar_embedder and style_embedder (a new product's "
                             "image in both spaces) or neither")
        if embedders[0] is None:
            return
        for embedder in embedders:
            shape = embedder.input_spec.shape
            if embedder.input_name != "image" or shape.rank != 4 or shape[3] != 3 or \
                    None in shape[1:3]:
                raise ValueError(f"the look embedders take an image float32 [None, H, W, 3] "
                                 f"with H and W known. Received: {embedder.input_name} "
                                 f"{shape}")
        if embedders[0].input_spec.shape != embedders[1].input_spec.shape:
            raise ValueError(f"similar_embedder and style_embedder must take the same image. "
                             f"Received: {embedders[0].input_spec.shape} and "
                             f"{embedders[1].input_spec.shape}")

    @property
    def user_ids(self) -> np.ndarray:
        """No customers: the head is item to item (the browse page's catalogue lists none)."""
        return np.array([], str)

    @property
    def image_shape(self) -> list[int] | None:
        """[H, W, 3] of a query image, None without an image path."""
        if self.similar_embedder is None:
            return None
        return self.similar_embedder.input_spec.shape.as_list()[1:]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"item_ids": self.item_ids, "item_categories": self.item_categories,
                "similar_vectors": self.similar_vectors, "style_vectors": self.style_vectors}

    def functions(self) -> dict[str, tuple[Callable, list[tf.TensorSpec], Sequence]]:
        if self.similar_embedder is None:
            return {}
        return {name: (embedder.embed, [embedder.input_spec], embedder.variables)
                for name, embedder in (("similar_embedder", self.similar_embedder),
                                       ("style_embedder", self.style_embedder))}

    def describe_functions(self) -> dict[str, Any]:
        return {"complements": self.complements, "image_shape": self.image_shape}

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray], functions: dict[str, Any],
                described: dict[str, Any], info: dict) -> "LookParts":
        embedders = {}
        for name in ("similar_embedder", "style_embedder"):
            if name in functions:
                call, variables = functions[name]
                spec = tf.TensorSpec([None, *described["image_shape"]], tf.float32, "image")
                embedders[name] = ItemEmbedder("image", spec, call, variables)
        return cls(arrays["item_ids"], arrays["item_categories"], arrays["similar_vectors"],
                   arrays["style_vectors"], complements=described["complements"], info=info,
                   **embedders)


@dataclasses.dataclass
class DesignSettings:
    """How the ``design`` signature searches (paper 003, III-D), fixed in the export's graph.

    Args:
        restarts: m, the random starting points of each request's ascent (the paper's 64); a
            request's n designs are sampled among them, so n <= m.
        steps: Adam steps on z' from each start (a fixed count: the graph's loop runs exactly
            this many).
        learning_rate: Adam's step size on z'.
        eta: the realism weight of eq. 9 that ``tfrec-fashion design`` uses by default (the
            served signature's default is the contract's, 1).
    """

    restarts: int = 64
    steps: int = 100
    learning_rate: float = 0.05
    eta: float = 1.0

    def __post_init__(self) -> None:
        for name in ("restarts", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
            setattr(self, name, int(value))
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive. Received: "
                             f"learning_rate={self.learning_rate!r}")
        if not (np.isfinite(self.eta) and self.eta >= 0):
            raise ValueError(f"eta must be >= 0. Received: eta={self.eta!r}")
        self.learning_rate, self.eta = float(self.learning_rate), float(self.eta)


@dataclasses.dataclass
class ConditionalGan:
    """A trained conditional GAN's two networks as graph functions (differentiable: the design
    ascent takes gradients through both).

    Args:
        latent_dim: L, the size of z.
        image_shape: (H, W, 3) of a generated image.
        generate: graph-safe (z float32 [B, L], category int32 [B]) -> images float32
            [B, H, W, 3] in [0, 1], inference mode.
        discriminate: graph-safe (images float32 [B, H, W, 3], category int32 [B]) -> float32
            [B], the realism D(x, c) (1 = real, 0 = fake), inference mode.
        variables: every variable the two functions read.
    """

    latent_dim: int
    image_shape: tuple[int, int, int]
    generate: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    discriminate: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    variables: Sequence[tf.Variable]

    def __post_init__(self) -> None:
        self.latent_dim = int(self.latent_dim)
        self.image_shape = tuple(int(side) for side in self.image_shape)
        if len(self.image_shape) != 3 or self.image_shape[2] != 3 or self.latent_dim < 1:
            raise ValueError(f"a GAN generates images [H, W, 3] from z of size >= 1. Received: "
                             f"image_shape={list(self.image_shape)}, "
                             f"latent_dim={self.latent_dim}")

    def input_signatures(self) -> dict[str, list[tf.TensorSpec]]:
        category = tf.TensorSpec([None], tf.int32, "category")
        return {"generator": [tf.TensorSpec([None, self.latent_dim], tf.float32, "z"),
                              category],
                "discriminator": [tf.TensorSpec([None, *self.image_shape], tf.float32,
                                                "images"), category]}


@dataclasses.dataclass
class GenerationParts:
    """What a conditional GAN trained beside a DVBPR run contributes to an export (head
    "generation": ``design``, new images a customer would like, paper 003 III-C/D).

    Args:
        user_ids: str [U], the customers of the DVBPR run.
        user_vectors: float32 [U, K], their theta_u; an unknown customer gets their mean,
            flagged ``cold_start``.
        categories: the GAN's categories, index c of the networks' category input (the dataset's
            ``items.category`` values, sorted).
        gan: the generator and discriminator.
        phi: DVBPR's image path Phi: an ``ItemEmbedder`` "image" [None, Hp, Wp, 3] in [0, 1] ->
            float32 [B, K] (a generated image is resized to Hp x Wp, nearest neighbour, when the
            sizes differ).
        settings: the ascent's restarts, steps, learning rate and default eta.
        item_ids: str [N], the catalogue items a design may be tailored from (prototypes);
            may be empty.
        item_categories: str [N], each one of ``categories``.
        item_images: uint8 [N, H, W, 3] at the GAN's image shape, or None (no tailoring).
        info: JSON-able facts written to ``assets.extra/tfrec_fashion.json`` (model, dataset,
            the DVBPR run).
    """

    HEAD: ClassVar[str] = "generation"

    user_ids: np.ndarray
    user_vectors: np.ndarray
    categories: list[str]
    gan: ConditionalGan
    phi: ItemEmbedder
    settings: DesignSettings = dataclasses.field(default_factory=DesignSettings)
    item_ids: np.ndarray | None = None
    item_categories: np.ndarray | None = None
    item_images: np.ndarray | None = None
    info: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.categories = [str(category) for category in self.categories]
        if not self.categories or len(set(self.categories)) != len(self.categories) or \
                "" in self.categories:
            raise ValueError(f"categories must be distinct non-empty names. Received: "
                             f"{self.categories}")
        self.user_ids, self.item_ids, self.item_categories = _catalogue(
            self.user_ids, [] if self.item_ids is None else self.item_ids,
            [] if self.item_categories is None else self.item_categories)
        unknown = sorted(set(self.item_categories.tolist()) - set(self.categories))
        if unknown:
            raise ValueError(f"item_categories name categories the GAN lacks: {unknown}; it "
                             f"has {self.categories}")
        self.user_vectors = np.asarray(self.user_vectors, np.float32)
        shape = self.phi.input_spec.shape
        if self.phi.input_name != "image" or shape.rank != 4 or shape[3] != 3 or \
                None in shape[1:3]:
            raise ValueError(f"phi takes an image float32 [None, H, W, 3] with H and W known. "
                             f"Received: {self.phi.input_name} {shape}")
        if self.user_vectors.ndim != 2 or len(self.user_vectors) != len(self.user_ids) or \
                not len(self.user_ids):
            raise ValueError(f"user_vectors must be [{len(self.user_ids)}, K] (one row per user "
                             f"id, at least one). Received: shape={self.user_vectors.shape}")
        _check_finite(user_vectors=self.user_vectors)
        if self.item_images is not None:
            self.item_images = np.asarray(self.item_images)
            expected = (len(self.item_ids), *self.gan.image_shape)
            if self.item_images.dtype != np.uint8 or self.item_images.shape != expected:
                raise ValueError(f"item_images must be uint8 {list(expected)} (one per item id, "
                                 f"at the GAN's size). Received: {self.item_images.dtype} "
                                 f"{list(self.item_images.shape)}")

    @property
    def cold_start_vector(self) -> np.ndarray:
        """An unknown customer's theta: the mean customer's, float32 [K]."""
        return self.user_vectors.mean(axis=0)

    @property
    def image_shape(self) -> list[int]:
        """[H, W, 3] of a design."""
        return list(self.gan.image_shape)

    def category_index(self, category: str) -> int:
        """The GAN's index of ``category``; ValueError naming the known ones."""
        if category not in self.categories:
            raise ValueError(f"unknown category {category!r}; the categories are "
                             f"{', '.join(self.categories)}")
        return self.categories.index(category)

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {"user_ids": self.user_ids, "user_vectors": self.user_vectors,
                  "item_ids": self.item_ids, "item_categories": self.item_categories}
        if self.item_images is not None:
            arrays["item_images"] = self.item_images
        return arrays

    def functions(self) -> dict[str, tuple[Callable, list[tf.TensorSpec], Sequence]]:
        signatures = self.gan.input_signatures()
        return {"generator": (self.gan.generate, signatures["generator"], self.gan.variables),
                "discriminator": (self.gan.discriminate, signatures["discriminator"],
                                  self.gan.variables),
                "phi": (self.phi.embed, [self.phi.input_spec], self.phi.variables)}

    def describe_functions(self) -> dict[str, Any]:
        return {"categories": self.categories, "latent_dim": self.gan.latent_dim,
                "image_shape": self.image_shape,
                "phi_shape": self.phi.input_spec.shape.as_list()[1:],
                "settings": dataclasses.asdict(self.settings)}

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray], functions: dict[str, Any],
                described: dict[str, Any], info: dict) -> "GenerationParts":
        (generate, gan_variables), (discriminate, more) = (functions["generator"],
                                                           functions["discriminator"])
        # Both loaded functions' variables: a loaded function whose variables nothing
        # references any more cannot run.
        gan = ConditionalGan(described["latent_dim"], described["image_shape"], generate,
                             discriminate, [*gan_variables, *more])
        embed, phi_variables = functions["phi"]
        phi = ItemEmbedder("image", tf.TensorSpec([None, *described["phi_shape"]], tf.float32,
                                                  "image"), embed, phi_variables)
        return cls(arrays["user_ids"], arrays["user_vectors"], described["categories"], gan,
                   phi, DesignSettings(**described["settings"]), arrays["item_ids"],
                   arrays["item_categories"], arrays.get("item_images"), info)


PARTS_TYPES: dict[str, type] = {RetrievalParts.HEAD: RetrievalParts,
                                CompatibilityParts.HEAD: CompatibilityParts,
                                OutfitParts.HEAD: OutfitParts, LookParts.HEAD: LookParts,
                                GenerationParts.HEAD: GenerationParts}
Parts = RetrievalParts | CompatibilityParts | OutfitParts | LookParts | GenerationParts


# ----------------------------------------------------------------------------- from a recipe
def retrieval_parts(recipe, model, user_vectors: np.ndarray | None = None,
                    item_vectors: np.ndarray | None = None) -> RetrievalParts:
    """``RetrievalParts`` of a trained ``model`` and the ``recipe`` that prepared its data: its
    ``user_vectors(model)``, ``item_vectors(model)`` (temporal models: the last time epoch,
    "now"), ``item_embedder(model)`` and what each user bought."""
    dataset = recipe.dataset
    users = np.asarray(recipe.user_vectors(model) if user_vectors is None else user_vectors,
                       np.float32)
    items = np.asarray(recipe.item_vectors(model) if item_vectors is None else item_vectors,
                       np.float32)
    info = {"model": recipe.model_config.name, "dataset": dataset.name,
            "n_users": int(users.shape[0]), "n_items": int(items.shape[0]),
            "dim": int(users.shape[1])}
    return RetrievalParts(user_ids=dataset.users.ids, item_ids=dataset.items.ids,
                          item_categories=dataset.items.category, user_vectors=users,
                          item_vectors=items, embedder=recipe.item_embedder(model),
                          seen=seen_matrix(dataset), info=info)


def seen_matrix(dataset) -> scipy.sparse.csr_matrix | None:
    """Every interaction the dataset knows (training and held-out alike: in production they
    all happened), as a users x items CSR matrix; None without interactions."""
    interactions = dataset.interactions
    if interactions is None or len(interactions) == 0:
        return None
    ones = np.ones(len(interactions), np.int8)
    seen = scipy.sparse.csr_matrix((ones, (interactions.user, interactions.item)),
                                   shape=(len(dataset.users), len(dataset.items)))
    seen.data[:] = 1  # repeated purchases summed: one entry is enough
    return seen


# ----------------------------------------------------------------------------- on disk
class _SavedFunction(tf.Module):
    """One graph function and the variables it reads, saved as a SavedModel; its float outputs
    are float32 whatever the model computed in (a mixed-precision model may give float16 or
    bfloat16: the export's contract is float32)."""

    def __init__(self, function: Callable, input_signature: list[tf.TensorSpec],
                 variables: Sequence[tf.Variable]):
        super().__init__()
        self.tracked = list(variables)
        self.call = tf.function(lambda *inputs: _float32_outputs(function(*inputs)),
                                input_signature=input_signature)


def _float32_outputs(outputs: Any) -> Any:
    """Every floating tensor in ``outputs`` as float32 (float32 ones as they are)."""
    return tf.nest.map_structure(
        lambda output: tf.cast(output, tf.float32)
        if isinstance(output, tf.Tensor) and output.dtype.is_floating else output, outputs)


def save_parts(parts: Parts, directory: str | Path, item_images: np.ndarray | None = None
               ) -> Path:
    """Writes ``parts`` into ``directory`` (``<run_dir>/serving``), replacing what was there
    only once the new copy is complete; with ``item_images`` (uint8 [N, H, W, 3] in the parts'
    item order, :func:`thumbnails.images_in_order`) also the browse page's thumbnail sheet."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f"{directory.name}.tmp-", dir=directory.parent))
    try:
        np.savez(temporary / _ARRAYS_FILE, **parts.arrays())
        for name, (function, signature, variables) in parts.functions().items():
            tf.saved_model.save(_SavedFunction(function, signature, variables),
                                str(temporary / name))
        (temporary / _PARTS_FILE).write_text(json.dumps(
            {"head": parts.HEAD, "functions": sorted(parts.functions()),
             "described": parts.describe_functions(), "info": parts.info}, indent=2,
            default=float))
        if item_images is not None:
            write_thumbnails(item_images, temporary)
        if directory.exists():
            shutil.rmtree(directory)
        os.rename(temporary, directory)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return directory


def has_parts(run_dir: str | Path) -> bool:
    """Whether a run directory holds serving parts (runs trained before they existed do not)."""
    return (Path(run_dir) / DIRECTORY / _PARTS_FILE).is_file()


def load_parts(run_dir: str | Path) -> Parts:
    """The serving parts a finished run wrote (``<run_dir>/serving``); reads nothing else."""
    directory = Path(run_dir) / DIRECTORY
    if not (directory / _PARTS_FILE).is_file():
        raise ConfigError(f"{run_dir} holds no serving parts ({directory / _PARTS_FILE}); "
                          "train it to the end with `tfrec-fashion train` first")
    described = json.loads((directory / _PARTS_FILE).read_text())
    head = described["head"]
    if head not in PARTS_TYPES:
        raise ConfigError(f"{directory}: unknown serving head {head!r}; known: "
                          f"{sorted(PARTS_TYPES)}")
    with np.load(directory / _ARRAYS_FILE, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    functions = {}
    for name in described["functions"]:
        loaded = tf.saved_model.load(str(directory / name))
        functions[name] = (loaded.call, list(loaded.tracked))
    return PARTS_TYPES[head].restore(arrays, functions, described["described"],
                                     described["info"])
