"""The serving contract, written once: what an exported SavedModel answers and what lies beside it.

Export (``tfrec_fashion_export.module``) builds its signatures from these declarations, the test
model (``testing.ToyRecommender``) builds the same ones, the client (``client.recommend_inputs``)
and the warm-up records (``warmup_inputs``) fill them, and the server pads chunked answers
with their padding values. :func:`differences` compares a SavedModel's SignatureDef with its
declaration, so an export or the toy cannot drift from the contract unnoticed (tests run it on
both).

A **head** is a model family's set of signatures (:data:`HEADS`). :data:`RETRIEVAL` (scores are
inner products of a user's query and item vectors; every model trained on interactions or
ratings)::

    recommend (= serving_default)
        user_id string [B]; k int32 [B] = [10]; category string [B] = [""] (any);
        exclude_item_ids string [B, M] = shape [1, 0]; exclude_seen bool [B] = [True]
        -> item_ids string [B, K] (padding ""), scores float32 [B, K] (padding -inf),
           cold_start bool [B]                     K = max(k); batch-size-1 inputs broadcast
    score        user_id [B], item_ids [B, N] -> scores float32 [B, N], cold_start [B]
    user_query   user_id [B] -> query float32 [B, D], cold_start [B],
                                seen_item_ids string [B, S] (padding "")
    embed_item   (models that see item content) image float32 [B, H, W, 3] or features
                 float32 [B, F] -> embedding float32 [B, D]: :func:`embed_item`
    recommend_new_customer  (models that fold a new customer in from votes: Partial Dual)
        voted_item_ids string [B, M] (padding ""); votes float32 [B, M] (each in the model's
        rating range; ignored where the id is ""); k int32 [B] = [10]; category string [B] =
        [""]; exclude_item_ids string [B, M'] = shape [1, 0]; exclude_voted bool [B] = [True]
        -> item_ids string [B, K] (padding ""), scores float32 [B, K] (padding -inf),
           query float32 [B, D] (the folded-in query, as ``user_query`` gives a known user's),
           cold_start bool [B] (the row held no votes: the cold-start query answered)
                 :data:`RECOMMEND_NEW_CUSTOMER`; scores are ``recommend``'s for that query,
                 the voted items left out unless ``exclude_voted`` is False
        and, in models whose customer tower reads a survey (StyNet), the optional inputs
        survey_questions string [B, Q] (padding ""), survey_answers string [B, Q] (each the
        answer to its question; "" no answer), both default shape [1, 0] (no answers; batch
        size 1 broadcasts): an unknown question or answer is INVALID_ARGUMENT naming it; a row
        with no votes is answered from its survey, cold_start only where it has neither

:data:`COMPATIBILITY` (a customer's score of a pair of items; PSA-Net and its kin)::

    complete_pair (= serving_default)
        user_id string [B]; item_id string [B]; k int32 [B] = [10];
        category string [B] = [""] (the item's complementary categories);
        exclude_item_ids string [B, M] = shape [1, 0]
        -> item_ids string [B, K] (padding ""), scores float32 [B, K] (padding -inf),
           cold_start bool [B]          the best partners for the item, for that customer
    score_pairs   user_id [B], item_id [B], partner_id [B] -> scores float32 [B], cold_start [B]
                  and, from models that weight subspaces per customer (PSA-Net), the optional
                  attention_weights float32 [B, S] (each customer's weights, rows sum to 1)
    complete_pair_new_customer, score_pairs_new_customer  (models whose scorer reads a
        customer vector: PSA-Net) the same with customer_embedding float32 [B, E] in place of
        user_id: each row's customer given by their vector, in the space of the model's customer
        vectors (PSA-Net: E_c as its Partial Dual or StyNet run writes them, so a new
        customer's is that run's ``recommend_new_customer`` query), no cold_start output; a
        known customer's own vector gives their answer. E other than the model's, or a value
        not finite, is INVALID_ARGUMENT naming it
                 :data:`COMPLETE_PAIR_NEW_CUSTOMER`, :data:`SCORE_PAIRS_NEW_CUSTOMER`

:data:`OUTFIT` (a customer's score of a whole outfit, one item per slot; PAN and its kin)::

    fill_in_the_blank (= serving_default)
        user_id string [B]; item_ids string [B, S] (one column per slot of the model, in its
        slot order; the blank's column is ignored, "" or anything); blank_slot string [B];
        k int32 [B] = [10]; exclude_item_ids string [B, M] = shape [1, 0]
        -> item_ids string [B, K] (padding ""), scores float32 [B, K] (padding -inf),
           cold_start bool [B]          the best items of the blank's slot for that outfit
    score_outfit  user_id [B], item_ids [B, S] -> scores float32 [B], cold_start [B]

Unknown customers are scored with the mean customer's vector and flagged by ``cold_start``.
A new customer who has voted on a few items is served personally by ``recommend_new_customer``
where the model has it, StyNet also from their survey answers (an unknown item id, survey
question or answer, or a vote outside the rating range is INVALID_ARGUMENT naming it; no votes
at all is the survey's answer, or with no answers either the cold-start answer, never an
error). PSA-Net's pairs are personal for them too: its ``*_new_customer`` signatures take the
``query`` its Partial Dual or StyNet run's ``recommend_new_customer`` answered.

:data:`LOOK` (item-to-item, no customer: complete the look for a shopper we know nothing about,
from the product they look at; scores are cosines, the index ranks L2-normalised vectors)::

    complementary (= serving_default)
        item_id string [B] = [""]; image float32 [B, H, W, 3] = shape [1, 0, 0, 3] (none);
        k int32 [B] = [10]; category string [B] = [""] (the anchor's complementary categories);
        item_category string [B] = [""] (the anchor's category: only for an image anchor);
        exclude_item_ids string [B, M] = shape [1, 0]
        -> item_ids string [B, K] (padding ""), scores float32 [B, K] (padding -inf)
                                        items that complete the anchor, by its style vector
    similar
        item_id [B] = [""]; image = none; k = [10]; category [B] = [""] (the item's own; an
        image query must name it); exclude_item_ids = shape [1, 0]
        -> item_ids, scores             items like the query, of its category, by similar vector

A row's anchor is its ``item_id``, or where that is "" the row's ``image`` (a new product not in
the catalogue, values in [0, 1], H x W the model's): an image of 0 x 0 pixels (the default) is
no image (a model without an image path refuses any other). ``category`` is always the
category searched. The query item itself is never returned.

:data:`GENERATION` (new images a customer would like, from a conditional GAN by preference
maximisation: paper 003, III-D)::

    design (= serving_default)
        user_id string [B]; category string [B]; n int32 [B] = [8]; seed int32 [B] = [0];
        eta float32 [B] = [1]
        -> images float32 [B, n, H, W, 3] (in [0, 1]), scores float32 [B, n] (the customer's
           preference theta_u . Phi(image)), objective float32 [B, n] (eq. 9: the score less
           eta times the realism penalty (D(image) - 1)^2), cold_start bool [B]

Each row runs the model's fixed ascent (m restarts, a fixed number of Adam steps on z', in the
graph) from starting points drawn from its ``seed`` (same seed, same answer) and returns ``n``
distinct restarts sampled with probability proportional to exp(objective) (eq. 11), in the
order drawn. ``n`` is one number for the whole request (a batch-size-1 input or equal rows),
1 <= n <= m; ``eta`` >= 0. An unknown category, an n out of range or unequal over the rows and
a negative eta are INVALID_ARGUMENT naming them; an unknown customer is designed for with the
mean customer's theta, flagged by ``cold_start``.

Beside each version, in ``assets.extra/``: :data:`WARMUP_FILE` (TF Serving's warm-up records),
:data:`DESCRIPTION_FILE` (what was exported), :data:`ANN_DIRECTORY` (the optional ScaNN
index that our server answers as :data:`RECOMMEND_APPROXIMATE`) and what the browse page shows:
:data:`CATALOGUE_FILE` (always), :data:`THUMBNAILS_FILE` with :data:`THUMBNAILS_LAYOUT_FILE`
(runs with item images) and :data:`ATTENTION_DIRECTORY` (runs ``visualize`` wrote maps into).

May import: tensorflow, numpy, tensorflow_serving protos. Nothing here runs a model.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

DEFAULT_K = 10
SERVING_DEFAULT = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
RECOMMEND_APPROXIMATE = "recommend_approximate"
UNKNOWN_USER = "__unknown_user__"

ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = os.path.join(ASSETS_EXTRA, "tf_serving_warmup_requests")
DESCRIPTION_FILE = os.path.join(ASSETS_EXTRA, "tfrec_fashion.json")
ANN_DIRECTORY = os.path.join(ASSETS_EXTRA, "ann")
# What the browse page (``ui.py``) reads beside a version, written by export when it has it:
CATALOGUE_FILE = os.path.join(ASSETS_EXTRA, "catalogue.json")  # user / item ids, categories
THUMBNAILS_FILE = os.path.join(ASSETS_EXTRA, "thumbnails.png")  # every item's image, one sheet
THUMBNAILS_LAYOUT_FILE = os.path.join(ASSETS_EXTRA, "thumbnails.json")  # its cells and columns
ATTENTION_DIRECTORY = os.path.join(ASSETS_EXTRA, "attention")  # <method>.json and <method>.png


def padding_value(dtype: np.dtype):
    """What padding entries of an output of this numpy dtype hold: "" / -inf / -1 / False."""
    dtype = np.dtype(dtype)
    if dtype == object or dtype.kind in "SU":
        return b""
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind == "b":
        return False
    return -1


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One input or output: its alias, dtype, shape (None = any size) and, for an input that
    may be left out, its default (written into ``SignatureDef.defaults``)."""

    name: str
    dtype: tf.DType
    shape: tuple[int | None, ...]
    default: object = None

    def spec(self) -> tf.TensorSpec:
        return tf.TensorSpec(self.shape, self.dtype, self.name)

    def default_tensor(self) -> tf.Tensor:
        """The default as a tensor (for a tf.function's argument default)."""
        value = np.asarray(self.default, dtype=object if self.dtype == tf.string else None)
        return tf.constant(value, self.dtype)


@dataclasses.dataclass(frozen=True)
class Signature:
    """A signature's name, inputs (in argument order), outputs, and the outputs only some
    models give (``optional_outputs``: present or absent, never different)."""

    name: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    optional_outputs: tuple[Tensor, ...] = ()
    optional_inputs: tuple[Tensor, ...] = ()  # only some models take them; each has a default

    def input_signature(self, optional: bool = False) -> list[tf.TensorSpec]:
        """``tf.function(input_signature=...)`` for it (``optional``: with the optional inputs
        after the others)."""
        return [tensor.spec() for tensor in self._inputs(optional)]

    def default(self, name: str) -> tf.Tensor:
        """The default of input ``name`` (optional ones too) as a tensor."""
        return {tensor.name: tensor for tensor in self._inputs(True)}[name].default_tensor()

    def _inputs(self, optional: bool) -> tuple[Tensor, ...]:
        return (*self.inputs, *self.optional_inputs) if optional else self.inputs


@dataclasses.dataclass(frozen=True)
class Head:
    """A model family's signatures; ``default`` also answers as ``serving_default``."""

    name: str
    signatures: tuple[Signature, ...]
    default: str

    def __getitem__(self, name: str) -> Signature:
        return {signature.name: signature for signature in self.signatures}[name]


def _ids(name: str, rank: int = 1) -> Tensor:
    return Tensor(name, tf.string, (None,) * rank)


RECOMMEND = Signature(
    "recommend",
    inputs=(_ids("user_id"), Tensor("k", tf.int32, (None,), [DEFAULT_K]),
            Tensor("category", tf.string, (None,), [""]),
            Tensor("exclude_item_ids", tf.string, (None, None), np.zeros((1, 0), object)),
            Tensor("exclude_seen", tf.bool, (None,), [True])),
    outputs=(_ids("item_ids", 2), Tensor("scores", tf.float32, (None, None)),
             Tensor("cold_start", tf.bool, (None,))))
SCORE = Signature(
    "score", inputs=(_ids("user_id"), _ids("item_ids", 2)),
    outputs=(Tensor("scores", tf.float32, (None, None)), Tensor("cold_start", tf.bool, (None,))))
USER_QUERY = Signature(
    "user_query", inputs=(_ids("user_id"),),
    outputs=(Tensor("query", tf.float32, (None, None)), Tensor("cold_start", tf.bool, (None,)),
             _ids("seen_item_ids", 2)))
RETRIEVAL = Head("retrieval", (RECOMMEND, SCORE, USER_QUERY), default=RECOMMEND.name)
# Optional, as embed_item: only models whose parts can fold a new customer in export it.
RECOMMEND_NEW_CUSTOMER = Signature(
    "recommend_new_customer",
    inputs=(_ids("voted_item_ids", 2), Tensor("votes", tf.float32, (None, None)),
            Tensor("k", tf.int32, (None,), [DEFAULT_K]),
            Tensor("category", tf.string, (None,), [""]),
            Tensor("exclude_item_ids", tf.string, (None, None), np.zeros((1, 0), object)),
            Tensor("exclude_voted", tf.bool, (None,), [True])),
    outputs=(_ids("item_ids", 2), Tensor("scores", tf.float32, (None, None)),
             Tensor("query", tf.float32, (None, None)), Tensor("cold_start", tf.bool, (None,))),
    # Models whose customer tower reads survey answers (StyNet) also take them; Partial Dual's
    # signature has exactly the inputs above.
    optional_inputs=(Tensor("survey_questions", tf.string, (None, None),
                            np.zeros((1, 0), object)),
                     Tensor("survey_answers", tf.string, (None, None),
                            np.zeros((1, 0), object))))

SCORE_PAIRS = Signature(
    "score_pairs", inputs=(_ids("user_id"), _ids("item_id"), _ids("partner_id")),
    outputs=(Tensor("scores", tf.float32, (None,)), Tensor("cold_start", tf.bool, (None,))),
    optional_outputs=(Tensor("attention_weights", tf.float32, (None, None)),))
COMPLETE_PAIR = Signature(
    "complete_pair",
    inputs=(_ids("user_id"), _ids("item_id"), Tensor("k", tf.int32, (None,), [DEFAULT_K]),
            Tensor("category", tf.string, (None,), [""]),
            Tensor("exclude_item_ids", tf.string, (None, None), np.zeros((1, 0), object))),
    outputs=(_ids("item_ids", 2), Tensor("scores", tf.float32, (None, None)),
             Tensor("cold_start", tf.bool, (None,))))
COMPATIBILITY = Head("compatibility", (SCORE_PAIRS, COMPLETE_PAIR), default=COMPLETE_PAIR.name)
# Optional, as recommend_new_customer: only models whose scorer reads a customer vector
# (PSA-Net) export them; the others keep exactly the head's signatures.
_CUSTOMER_EMBEDDING = Tensor("customer_embedding", tf.float32, (None, None))
SCORE_PAIRS_NEW_CUSTOMER = Signature(
    "score_pairs_new_customer",
    inputs=(_CUSTOMER_EMBEDDING, *SCORE_PAIRS.inputs[1:]), outputs=SCORE_PAIRS.outputs[:1],
    optional_outputs=SCORE_PAIRS.optional_outputs)
COMPLETE_PAIR_NEW_CUSTOMER = Signature(
    "complete_pair_new_customer", inputs=(_CUSTOMER_EMBEDDING, *COMPLETE_PAIR.inputs[1:]),
    outputs=COMPLETE_PAIR.outputs[:2])

SCORE_OUTFIT = Signature(
    "score_outfit", inputs=(_ids("user_id"), _ids("item_ids", 2)),
    outputs=(Tensor("scores", tf.float32, (None,)), Tensor("cold_start", tf.bool, (None,))))
FILL_IN_THE_BLANK = Signature(
    "fill_in_the_blank",
    inputs=(_ids("user_id"), _ids("item_ids", 2), _ids("blank_slot"),
            Tensor("k", tf.int32, (None,), [DEFAULT_K]),
            Tensor("exclude_item_ids", tf.string, (None, None), np.zeros((1, 0), object))),
    outputs=(_ids("item_ids", 2), Tensor("scores", tf.float32, (None, None)),
             Tensor("cold_start", tf.bool, (None,))))
OUTFIT = Head("outfit", (SCORE_OUTFIT, FILL_IN_THE_BLANK), default=FILL_IN_THE_BLANK.name)

NO_IMAGE = np.zeros((1, 0, 0, 3), np.float32)  # the image input's default: "no image"
_LOOK_QUERY = (Tensor("item_id", tf.string, (None,), [""]),
               Tensor("image", tf.float32, (None, None, None, None), NO_IMAGE),
               Tensor("k", tf.int32, (None,), [DEFAULT_K]),
               Tensor("category", tf.string, (None,), [""]))
_EXCLUDE = Tensor("exclude_item_ids", tf.string, (None, None), np.zeros((1, 0), object))
SIMILAR = Signature("similar", inputs=(*_LOOK_QUERY, _EXCLUDE),
                    outputs=(_ids("item_ids", 2), Tensor("scores", tf.float32, (None, None))))
COMPLEMENTARY = Signature(
    "complementary",
    inputs=(*_LOOK_QUERY, Tensor("item_category", tf.string, (None,), [""]), _EXCLUDE),
    outputs=(_ids("item_ids", 2), Tensor("scores", tf.float32, (None, None))))
# The image's height, width and channels are any size in the SignatureDef and checked in the
# graph against the model's, so a wrong shape is INVALID_ARGUMENT naming the expected one.
LOOK = Head("look", (SIMILAR, COMPLEMENTARY), default=COMPLEMENTARY.name)

DEFAULT_DESIGNS = 8
DESIGN = Signature(
    "design",
    inputs=(_ids("user_id"), _ids("category"),
            Tensor("n", tf.int32, (None,), [DEFAULT_DESIGNS]),
            Tensor("seed", tf.int32, (None,), [0]), Tensor("eta", tf.float32, (None,), [1.0])),
    outputs=(Tensor("images", tf.float32, (None, None, None, None, None)),
             Tensor("scores", tf.float32, (None, None)),
             Tensor("objective", tf.float32, (None, None)),
             Tensor("cold_start", tf.bool, (None,))))
GENERATION = Head("generation", (DESIGN,), default=DESIGN.name)
HEADS = {head.name: head for head in (RETRIEVAL, COMPATIBILITY, OUTFIT, LOOK, GENERATION)}


def embed_item(input_spec: tf.TensorSpec) -> Signature:
    """``embed_item`` for an item embedder taking ``input_spec`` (``image`` or ``features``)."""
    return Signature("embed_item", inputs=(Tensor(input_spec.name, tf.float32,
                                                  tuple(input_spec.shape)),),
                     outputs=(Tensor("embedding", tf.float32, (None, None)),))


# === Filling it ===

def recommend_inputs(user_ids: Sequence[str], k: int = DEFAULT_K, category: str | None = None,
                     exclude: Sequence[str] | Sequence[Sequence[str]] | None = None,
                     exclude_width: int = 0, exclude_seen: bool | None = None
                     ) -> dict[str, np.ndarray]:
    """``recommend``'s inputs, every one with batch size B (one row per user), as the stock TF
    Serving with batching requires (see ``serving/batching.config``).

    Args:
        user_ids: B user ids.
        k: how many items per user.
        category: only items of this category (None: any).
        exclude: item ids to leave out, for every user (a list of ids) or per user (B lists).
        exclude_width: pad exclusion rows with "" to at least this width (TF Serving batching
            merges only requests whose rows have the same width).
        exclude_seen: leave out what each user already bought (False: keep it); None: the
            signature's default (True).
    """
    batch = len(user_ids)
    inputs = {"user_id": string_array(user_ids),
              **top_k_inputs(batch, k, category, exclude, exclude_width, "users")}
    if exclude_seen is not None:
        inputs["exclude_seen"] = np.full(batch, bool(exclude_seen))
    return inputs


def top_k_inputs(batch: int, k: int, category: str | None,
                 exclude: Sequence[str] | Sequence[Sequence[str]] | None, exclude_width: int,
                 rows_are: str) -> dict[str, np.ndarray]:
    """``k``, ``category`` and (when given) ``exclude_item_ids`` of a retrieval top-k request
    of ``batch`` rows (``rows_are`` names them in messages)."""
    inputs = {"k": np.full(batch, k, dtype=np.int32),
              "category": string_array([category or ""] * batch)}
    if exclude or exclude_width:
        inputs["exclude_item_ids"] = exclusion_rows(exclude, batch, exclude_width, rows_are)
    return inputs


def new_customer_inputs(votes: Sequence[Sequence[tuple[str, float]]], k: int = DEFAULT_K,
                        category: str | None = None,
                        exclude: Sequence[str] | Sequence[Sequence[str]] | None = None,
                        exclude_width: int = 0, exclude_voted: bool | None = None,
                        votes_width: int = 0,
                        survey: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None
                        ) -> dict[str, np.ndarray]:
    """``recommend_new_customer``'s inputs for B new customers, batch size B each.

    Args:
        votes: one list of (item id, vote) pairs per customer (an empty list: no votes yet,
            the cold-start answer).
        k, category, exclude, exclude_width: as :func:`recommend_inputs`.
        exclude_voted: leave out the items each customer voted on (False: keep them); None:
            the signature's default (True).
        votes_width: pad vote rows with "" (vote 0, ignored) to at least this width (TF
            Serving batching merges only requests whose rows have the same width).
        survey: survey answers, question -> answer, for every customer (one mapping) or per
            customer (B mappings), as ``survey_questions`` / ``survey_answers`` ("" padded);
            None: not sent (models without a survey take no such inputs).
    """
    batch = len(votes)
    rows = [list(row) for row in votes]
    width = max(votes_width, *(len(row) for row in rows), 0)
    padded = [row + [("", 0.0)] * (width - len(row)) for row in rows]
    inputs = {"voted_item_ids": string_array([[item for item, _ in row] for row in padded])
              .reshape(batch, width),
              "votes": np.array([[vote for _, vote in row] for row in padded],
                                np.float32).reshape(batch, width),
              **top_k_inputs(batch, k, category, exclude, exclude_width, "customers")}
    if exclude_voted is not None:
        inputs["exclude_voted"] = np.full(batch, bool(exclude_voted))
    if survey is not None:
        inputs.update(survey_inputs(survey, batch))
    return inputs


def survey_inputs(survey: Mapping[str, str] | Sequence[Mapping[str, str]], batch: int
                  ) -> dict[str, np.ndarray]:
    """``survey_questions`` and ``survey_answers`` string [B, Q] (or [1, Q] for one mapping,
    which the signature broadcasts) of question -> answer mappings, "" padded."""
    rows = [dict(survey)] if isinstance(survey, Mapping) else [dict(row) for row in survey]
    if len(rows) not in (1, batch):
        raise ValueError(f"survey has {len(rows)} rows for {batch} customers; give one mapping "
                         "for all or one per customer")
    width = max(0, *(len(row) for row in rows))
    padded = [list(row.items()) + [("", "")] * (width - len(row)) for row in rows]
    return {"survey_questions": string_array([[q for q, _ in row] for row in padded])
            .reshape(len(rows), width),
            "survey_answers": string_array([[a for _, a in row] for row in padded])
            .reshape(len(rows), width)}


def exclusion_rows(exclude: Sequence[str] | Sequence[Sequence[str]] | None, batch: int,
                   width: int = 0, rows_are: str = "rows") -> np.ndarray:
    """``exclude_item_ids`` string [B, M]: one list of ids for every row or one list per row,
    padded with "" to the widest row and at least ``width``."""
    rows = [list(exclude or [])] if not exclude or isinstance(exclude[0], (str, bytes)) \
        else [list(row) for row in exclude]
    rows = rows * batch if len(rows) == 1 else rows
    if len(rows) != batch:
        raise ValueError(f"exclude has {len(rows)} rows for {batch} {rows_are}; give one list "
                         f"for all {rows_are} or one per row")
    width = max(width, *(len(row) for row in rows))
    return string_array([row + [""] * (width - len(row)) for row in rows])


def look_inputs(item_ids: Sequence[str] | None = None, images: np.ndarray | None = None,
                k: int | Sequence[int] = DEFAULT_K, category: str | Sequence[str] | None = None,
                item_category: str | Sequence[str] | None = None,
                exclude: Sequence[str] | Sequence[Sequence[str]] | None = None,
                exclude_width: int = 0) -> dict[str, np.ndarray]:
    """``similar`` / ``complementary`` inputs for B anchors (:data:`LOOK`), batch size B each.

    Args:
        item_ids: B catalogue ids; "" where the row's anchor is its image. None: all images.
        images: float32 [B, H, W, 3] in [0, 1], read where the row's item id is ""; None: no
            image input (the signature's default, no image). Under TF Serving's batching send
            images of the model's H x W in every request (zeros where the row has an item id;
            ``serving/batching.config``).
        k: how many items per anchor, one for all rows or one per row.
        category: the category searched, one for all rows or one per row (None: "", the
            query item's own for ``similar``, its complementary ones for ``complementary``).
        item_category: ``complementary`` only: an image anchor's category, one or per row.
        exclude: item ids to leave out, for every row or per row; ``exclude_width`` pads them.
    """
    if item_ids is None and images is None:
        raise ValueError("give item_ids, images, or both (images are read where the id is \"\")")
    batch = len(item_ids) if item_ids is not None else len(images)
    inputs = {"item_id": string_array(item_ids if item_ids is not None else [""] * batch),
              "k": np.broadcast_to(np.asarray(k, np.int32), (batch,)).copy()}
    if images is not None:
        images = np.asarray(images, np.float32)
        if len(images) != batch:
            raise ValueError(f"images has {len(images)} rows for {batch} item ids")
        inputs["image"] = images
    for name, value in (("category", category), ("item_category", item_category)):
        if name == "category" or value is not None:
            values = [value or ""] * batch if value is None or isinstance(value, (str, bytes)) \
                else list(value)
            if len(values) != batch:
                raise ValueError(f"{name} has {len(values)} entries for {batch} rows")
            inputs[name] = string_array(values)
    if exclude or exclude_width:
        inputs["exclude_item_ids"] = exclusion_rows(exclude, batch, exclude_width)
    return inputs


def warmup_inputs(user_ids: Sequence[str], item_ids: Sequence[str],
                  embed_input: tf.TensorSpec | None = None,
                  rating_range: Sequence[float] | None = None,
                  survey: Mapping[str, str] | None = None
                  ) -> dict[str, dict[str, np.ndarray]]:
    """One request per signature of :data:`RETRIEVAL` (and ``embed_item`` for ``embed_input``,
    ``recommend_new_customer`` for a model that takes votes in ``rating_range``), as TF Serving
    replays at load time: two known users and an unknown one (the cold-start path); for new
    customers two votes, one vote and padding, and none (the cold start), and with ``survey``
    (a model that reads one: question -> a known answer) the first row answers it; every input
    given, k no larger than the catalogue."""
    users = [*user_ids[:2], UNKNOWN_USER]
    k = DEFAULT_K if len(item_ids) >= DEFAULT_K else 1
    inputs = {
        RECOMMEND.name: recommend_inputs(users, k, exclude=[item_ids[0]], exclude_seen=True),
        SCORE.name: {"user_id": string_array(users),
                     "item_ids": string_array([list(item_ids[:2])] * len(users))},
        USER_QUERY.name: {"user_id": string_array(users)},
    }
    if embed_input is not None:
        inputs["embed_item"] = {embed_input.name: np.zeros([1, *embed_input.shape[1:]],
                                                           np.float32)}
    if rating_range is not None:
        low, high = (float(value) for value in rating_range)
        votes = [[(item_ids[0], high), (item_ids[-1], low)], [(item_ids[0], low)], []]
        inputs[RECOMMEND_NEW_CUSTOMER.name] = new_customer_inputs(
            votes, k, exclude=[item_ids[0]], exclude_voted=True,
            survey=None if survey is None else [dict(survey), {}, {}])
    return inputs


def pair_warmup_inputs(user_ids: Sequence[str], item_id: str, partner_id: str,
                       n_partners: int, customer_vectors: np.ndarray | None = None
                       ) -> dict[str, dict[str, np.ndarray]]:
    """One request per signature of :data:`COMPATIBILITY`: two known customers and an unknown
    one, an item and a partner it can be paired with, k no larger than the partners; with
    ``customer_vectors`` [B, E] (a model that scores customers given by their vector), the
    same requests of the ``*_new_customer`` signatures for those vectors."""
    users = [*user_ids[:2], UNKNOWN_USER]
    batch = len(users)
    new_customers = {}
    if customer_vectors is not None:
        vectors = np.asarray(customer_vectors, np.float32)
        rows = len(vectors)
        new_customers = {
            SCORE_PAIRS_NEW_CUSTOMER.name: {"customer_embedding": vectors,
                                            "item_id": string_array([item_id] * rows),
                                            "partner_id": string_array([partner_id] * rows)},
            COMPLETE_PAIR_NEW_CUSTOMER.name: {
                "customer_embedding": vectors, "item_id": string_array([item_id] * rows),
                "k": np.full(rows, min(DEFAULT_K, n_partners), np.int32),
                "category": string_array([""] * rows),
                "exclude_item_ids": string_array([[partner_id]] * rows)}}
    return {
        SCORE_PAIRS.name: {"user_id": string_array(users),
                           "item_id": string_array([item_id] * batch),
                           "partner_id": string_array([partner_id] * batch)},
        COMPLETE_PAIR.name: {"user_id": string_array(users),
                             "item_id": string_array([item_id] * batch),
                             "k": np.full(batch, min(DEFAULT_K, n_partners), np.int32),
                             "category": string_array([""] * batch),
                             "exclude_item_ids": string_array([[partner_id]] * batch)},
        **new_customers,
    }


def outfit_warmup_inputs(user_ids: Sequence[str], outfit: Sequence[str], blank_slot: str,
                         n_candidates: int) -> dict[str, dict[str, np.ndarray]]:
    """One request per signature of :data:`OUTFIT`: two known customers and an unknown one, a
    full outfit (one item per slot) and the slot to blank, k no larger than its items."""
    users = [*user_ids[:2], UNKNOWN_USER]
    batch = len(users)
    outfits = string_array([list(outfit)] * batch)
    return {
        SCORE_OUTFIT.name: {"user_id": string_array(users), "item_ids": outfits},
        FILL_IN_THE_BLANK.name: {"user_id": string_array(users), "item_ids": outfits,
                                 "blank_slot": string_array([blank_slot] * batch),
                                 "k": np.full(batch, min(DEFAULT_K, n_candidates), np.int32),
                                 "exclude_item_ids": string_array([[""]] * batch)},
    }


def look_warmup_inputs(item_id: str, category: str, image_shape: Sequence[int] | None,
                       n_items: int, complements: bool = True
                       ) -> dict[str, dict[str, np.ndarray]]:
    """One request per signature of :data:`LOOK`: a catalogue item and, for a model with an
    image path, a new product's image of ``image_shape`` [H, W, 3] (seeded noise: a flat image
    may embed to a zero vector, EfficientNet-Lite0's pooled features of grey do) and ``category``;
    ``complements=False``: the item's category has none, so the request names ``category``."""
    ids = [item_id] if image_shape is None else [item_id, ""]
    images = (np.zeros([1, 0, 0, 3], np.float32) if image_shape is None  # every input given
              else np.random.default_rng(0).random([2, *image_shape]).astype(np.float32))
    k = min(DEFAULT_K, n_items)
    return {
        SIMILAR.name: look_inputs(ids, images, k, ["", category][:len(ids)], exclude=[""]),
        COMPLEMENTARY.name: look_inputs(ids, images, k, "" if complements else category,
                                        ["", category][:len(ids)], exclude=[""]),
    }


def design_inputs(user_ids: Sequence[str], category: str | Sequence[str],
                  n: int = DEFAULT_DESIGNS, seed: int | Sequence[int] = 0,
                  eta: float | Sequence[float] | None = None) -> dict[str, np.ndarray]:
    """``design``'s inputs for B customers (:data:`GENERATION`), batch size B each.

    Args:
        user_ids: B customer ids (an unknown one is the cold-start customer).
        category: the category to design, one for all rows or one per row.
        n: designs per row (one number for the request).
        seed: the ascent's seed, one for all rows or one per row.
        eta: the realism weight, one or per row; None: the signature's default (1).
    """
    batch = len(user_ids)

    def rows(name, value, dtype):
        values = [value] * batch if np.ndim(value) == 0 or isinstance(value, (str, bytes)) \
            else list(value)
        if len(values) != batch:
            raise ValueError(f"{name} has {len(values)} entries for {batch} customers")
        return string_array(values) if dtype is None else np.asarray(values, dtype)

    inputs = {"user_id": string_array(user_ids), "category": rows("category", category, None),
              "n": np.full(batch, n, np.int32), "seed": rows("seed", seed, np.int32)}
    if eta is not None:
        inputs["eta"] = rows("eta", eta, np.float32)
    return inputs


def design_warmup_inputs(user_ids: Sequence[str], category: str, n: int
                         ) -> dict[str, dict[str, np.ndarray]]:
    """One ``design`` request: a known customer and an unknown one (the cold-start path),
    every input given (each row runs a whole ascent: two rows are enough to trace it)."""
    return {DESIGN.name: design_inputs([*user_ids[:1], UNKNOWN_USER], category, n, [0, 1],
                                       1.0)}


def string_array(values) -> np.ndarray:
    """(Nested lists of) str or bytes -> an object array of bytes, the DT_STRING numpy form."""
    array = np.array(values, dtype=object)
    flat = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in array.reshape(-1)]
    return np.array(flat, dtype=object).reshape(array.shape)


# === Checking a SavedModel against it ===

def differences(signature: Signature, signature_def) -> list[str]:
    """How a SavedModel's ``SignatureDef`` departs from ``signature``: aliases, dtypes, shapes
    (inputs exactly, -1 = None; outputs by rank, a None dimension fitting any size, as the
    graph may know D) and defaults; empty when it follows the contract."""
    found = []
    optional = [tensor for tensor in signature.optional_outputs
                if tensor.name in signature_def.outputs]
    optional_inputs = [tensor for tensor in signature.optional_inputs
                       if tensor.name in signature_def.inputs]
    if optional_inputs and len(optional_inputs) != len(signature.optional_inputs):
        found.append(f"{signature.name}: optional inputs "
                     f"{sorted(t.name for t in optional_inputs)}, contract all or none of "
                     f"{sorted(t.name for t in signature.optional_inputs)}")
    for kind, declared, actual in (("input", (*signature.inputs, *optional_inputs),
                                    signature_def.inputs),
                                   ("output", (*signature.outputs, *optional),
                                    signature_def.outputs)):
        names = {tensor.name for tensor in declared}
        if names != set(actual):
            found.append(f"{signature.name}: {kind}s {sorted(actual)}, contract {sorted(names)}")
            continue
        for tensor in declared:
            info = actual[tensor.name]
            shape = tuple(None if dim.size < 0 else dim.size for dim in info.tensor_shape.dim)
            fits = shape == tensor.shape if kind == "input" else (  # outputs: None = any size
                len(shape) == len(tensor.shape) and
                all(want in (None, got) for want, got in zip(tensor.shape, shape)))
            if info.dtype != tensor.dtype.as_datatype_enum or not fits:
                found.append(f"{signature.name}.{tensor.name}: {tf.as_dtype(info.dtype).name} "
                             f"{list(shape)}, contract {tensor.dtype.name} {list(tensor.shape)}")
    declared_defaults = {tensor.name: tensor for tensor in (*signature.inputs, *optional_inputs)
                         if tensor.default is not None}
    if set(signature_def.defaults) != set(declared_defaults):
        found.append(f"{signature.name}: defaults for {sorted(signature_def.defaults)}, "
                     f"contract {sorted(declared_defaults)}")
    for name, tensor in declared_defaults.items():
        if name in signature_def.defaults:
            value = tf.make_ndarray(signature_def.defaults[name])
            expected = np.asarray(tensor.default_tensor())
            if value.shape != expected.shape or not np.array_equal(value, expected):
                found.append(f"{signature.name}.{name}: default {value.tolist()}, contract "
                             f"{expected.tolist()}")
    return found
