"""The look head's module: complete the look from one product, with no customer
(``contract.LOOK``: ``similar``, ``complementary`` = serving_default).

``LookParts`` (``tfrec_fashion.training.serving_parts``) carry each item's vector in two
spaces: one where alike items lie close (``similar``) and a style space where items that
complete each other do (``complementary``), and optionally the model's image path into both.
Each space is L2-normalised here and held in the retrieval index (``index.make_index``: exact
``FilteredBruteForce``, or the approximate ``FilteredPartitioned``), so both signatures rank by
cosine through the same index, category filter and exclusions as ``recommend``.

A request row's anchor is its ``item_id`` (its stored, normalised vector) or, where that is "",
the row's ``image``: a new product not yet in the catalogue, embedded by the model's image path
and normalised. ``similar`` searches the ``category`` asked for, by default the item's own (an
image names it). ``complementary`` searches the asked ``category``, by default the anchor's
complementary categories (``LookParts.complements``; an image anchor names its own category in
``item_category``): a bool mask over the categories, which the index takes as it takes one
category. The anchor item itself and ``exclude_item_ids`` are never returned.

Bad requests fail inside the graph with ``InvalidArgumentError`` (INVALID_ARGUMENT when served),
each naming the problem: an unknown item id or category, a row with neither an item id nor an
image, an image of another shape than the model's or with values outside [0, 1], k outside
[1, n_items], and an image sent to a model without an image path.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.training.serving_parts import ItemEmbedder, LookParts
from tfrec_fashion_export.index import (describe_scan, make_index, recall_against_brute_force,
                                        refuse_low_recall)
from tfrec_fashion_export.module import (broadcast_rows, complement_table, head_signatures,
                                         lookup_table, top_k_checks)
from tfrec_fashion_serving.contract import COMPLEMENTARY, LOOK, SIMILAR

ANCHOR = "item_id or image"  # the inputs a request's batch comes from
IMAGE_RANGE = "image values must lie in [0, 1] (divide 8-bit pixels by 255)"


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (the index then ranks by cosine), float32."""
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class LookSpace(tf.Module):
    """One space of the look head: normalised item vectors, their index and the image path.

    Args:
        name: the space's name ("similar_space", "style_space").
        vectors: float32 [N, D], each item's vector (normalised here).
        category_rows: int [N], each item's category index in [0, C).
        n_categories: C.
        embedder: the model's image -> vector [B, D] in this space, or None.
        index: "brute_force" or "partitioned"; index_params: ``PartitionedTopK`` arguments.
    """

    def __init__(self, name: str, vectors: np.ndarray, category_rows: np.ndarray,
                 n_categories: int, embedder: ItemEmbedder | None, index: str,
                 index_params: dict | None):
        super().__init__(name=name)
        self.unit_vectors = normalised(vectors)
        self.vectors = tf.Variable(self.unit_vectors, trainable=False, name="vectors")
        self.index = make_index(index, self.unit_vectors, category_rows, n_categories, 1.0,
                                **(index_params or {}))
        self.embedder = embedder
        if embedder is not None:
            self.embedder_variables = list(embedder.variables)

    def queries(self, rows: tf.Tensor, from_image: tf.Tensor, image: tf.Tensor,
                batch: tf.Tensor) -> tf.Tensor:
        """Unit query vectors [B, D]: the stored row, or where ``from_image`` the image's."""
        stored = tf.gather(self.vectors, tf.maximum(rows, 0))
        if self.embedder is None:
            return stored
        shape = self.embedder.input_spec.shape

        def embedded():
            vectors = self.embedder.embed(tf.ensure_shape(image, shape))
            check = tf.debugging.assert_greater(
                tf.norm(vectors, axis=1), 0.0,
                message="the image embeds to a zero vector, which has no direction to rank by")
            with tf.control_dependencies([check]):
                vectors = tf.math.l2_normalize(vectors, axis=1)
            return broadcast_rows(vectors, batch, "image", ANCHOR)

        from_images = tf.cond(tf.reduce_any(from_image), embedded,
                              lambda: tf.zeros_like(stored))
        return tf.where(from_image[:, None], from_images, stored)


class LookModule(tf.Module):
    """The SavedModel's root for the look head.

    Args:
        parts: what the trained complete-the-look model contributes.
        index: "brute_force" (exact) or "partitioned" (approximate, stock ops only), for both
            spaces.
        index_params: the partitioned index's parameters (``PartitionedTopK`` arguments).
    """

    def __init__(self, parts: LookParts, index: str = "brute_force",
                 index_params: dict | None = None):
        super().__init__(name="look")
        categories = np.unique(parts.item_categories)
        self.n_items, self.n_categories = len(parts.item_ids), len(categories)
        self.category_names = ", ".join(categories)
        category_rows = np.searchsorted(categories, parts.item_categories).astype(np.int32)
        partners, self.complement_names = complement_table(categories, parts.complements)
        self.image_shape = parts.image_shape  # [H, W, 3], or None: no image path
        self.item_table = lookup_table(parts.item_ids, "item_ids")
        self.category_table = lookup_table(categories, "categories")
        self.item_ids = tf.Variable(parts.item_ids, trainable=False, name="item_id_list")
        self.item_category_rows = tf.Variable(category_rows, trainable=False,
                                              name="item_category_rows")
        self.partner_categories = tf.Variable(partners, trainable=False,
                                              name="partner_categories")
        self.similar_space = LookSpace("similar_space", parts.similar_vectors, category_rows,
                                       len(categories), parts.similar_embedder, index,
                                       index_params)
        self.style_space = LookSpace("style_space", parts.style_vectors, category_rows,
                                     len(categories), parts.style_embedder, index, index_params)

    # ------------------------------------------------------------------ shared steps
    def _anchors(self, what: str, item_id, image, k, category, exclude_item_ids):
        """The request's rows, checked: (batch B, item rows [B] (-1 where the anchor is the
        row's image), from_image bool [B], k [B], category [B], its rows [B] (-1: "" or
        unknown), excluded item rows [B, M + 1] (the anchor itself first), the image)."""
        has_image = tf.size(image) > 0  # the default, 0 x 0 pixels, is no image
        n_images = tf.shape(image)[0]
        batch = tf.maximum(tf.shape(item_id)[0], tf.where(has_image, n_images, 0))
        item_id = broadcast_rows(item_id, batch, "item_id", ANCHOR)
        k = broadcast_rows(k, batch, "k", ANCHOR)
        category = broadcast_rows(category, batch, "category", ANCHOR)
        exclude_item_ids = broadcast_rows(exclude_item_ids, batch, "exclude_item_ids", ANCHOR)
        rows = self.item_table.lookup(item_id)
        from_image = tf.equal(item_id, "")
        category_rows = self.category_table.lookup(category)
        checks = [
            *top_k_checks(batch, k, self.n_items, ANCHOR),
            tf.debugging.assert_equal(
                tf.logical_or(from_image, rows >= 0), True,
                message=f"{what}: unknown item_id (a catalogue id, or empty with an image for "
                        "a new product)"),
            tf.debugging.assert_equal(
                tf.logical_or(tf.equal(category, ""), category_rows >= 0), True,
                message=f"{what}: unknown category; the categories are "
                        f"{self.category_names}"),
            tf.debugging.assert_equal(
                tf.logical_or(~has_image, tf.logical_or(tf.equal(n_images, 1),
                                                        tf.equal(n_images, batch))), True,
                message=f"image must have batch size 1 or that of {ANCHOR}"),
        ]
        checks += self._image_checks(what, image, has_image, from_image)
        with tf.control_dependencies(checks):  # nothing is retrieved or embedded unchecked
            rows, k, image = tf.identity(rows), tf.identity(k), tf.identity(image)
        excluded = tf.concat([rows[:, None], self.item_table.lookup(exclude_item_ids)], axis=1)
        return batch, rows, from_image, k, category, category_rows, excluded, image

    def _image_checks(self, what: str, image, has_image, from_image) -> list[tf.Operation]:
        """A row without an item id needs an image; an image has the model's shape and values
        in [0, 1] (a model without an image path takes none)."""
        if self.image_shape is None:
            return [
                tf.debugging.assert_equal(
                    has_image, False,
                    message=f"{what}: this model has no image path; query by item_id"),
                tf.debugging.assert_equal(
                    tf.reduce_any(from_image), False,
                    message=f"{what}: every row needs an item_id (this model has no image "
                            "path)"),
            ]
        expected = [*self.image_shape]
        shape_ok = tf.reduce_all(tf.equal(tf.shape(image)[1:], expected))
        finite = tf.reduce_all(tf.math.is_finite(image))
        in_range = tf.reduce_all((image >= 0.0) & (image <= 1.0))
        return [
            tf.debugging.assert_equal(
                tf.logical_or(~tf.reduce_any(from_image), has_image), True,
                message=f"{what}: a row with an empty item_id needs an image (a photo of the "
                        f"new product, [B, {', '.join(map(str, expected))}] in [0, 1])"),
            tf.debugging.assert_equal(
                tf.logical_or(~has_image, shape_ok), True,
                message=f"{what}: image must be [B, {', '.join(map(str, expected))}] (the "
                        f"input of this model), or 0 x 0 pixels for none"),
            tf.debugging.assert_equal(
                tf.logical_or(~has_image, finite & in_range), True,
                message=f"{what}: {IMAGE_RANGE}"),
        ]

    def _answer(self, space: LookSpace, queries, k, categories, excluded) -> dict:
        rows, scores = space.index(queries, k, categories, excluded)
        item_ids = tf.where(rows >= 0, tf.gather(self.item_ids, tf.maximum(rows, 0)), "")
        return {"item_ids": item_ids, "scores": scores}

    # ------------------------------------------------------------------ signatures
    @tf.function(input_signature=SIMILAR.input_signature())
    def similar(self, item_id=SIMILAR.default("item_id"), image=SIMILAR.default("image"),
                k=SIMILAR.default("k"), category=SIMILAR.default("category"),
                exclude_item_ids=SIMILAR.default("exclude_item_ids")):
        """The k items most like each anchor, of its category (or the asked one): [B, K]."""
        batch, rows, from_image, k, category, category_rows, excluded, image = self._anchors(
            "similar", item_id, image, k, category, exclude_item_ids)
        check = tf.debugging.assert_equal(
            tf.logical_or(~from_image, category_rows >= 0), True,
            message="similar: an image query needs its category (a new product has no "
                    f"catalogue row); one of: {self.category_names}")
        with tf.control_dependencies([check]):
            searched = tf.where(tf.equal(category, ""),
                                tf.gather(self.item_category_rows, tf.maximum(rows, 0)),
                                category_rows)
        queries = self.similar_space.queries(rows, from_image, image, batch)
        return self._answer(self.similar_space, queries, k, searched, excluded)

    @tf.function(input_signature=COMPLEMENTARY.input_signature())
    def complementary(self, item_id=COMPLEMENTARY.default("item_id"),
                      image=COMPLEMENTARY.default("image"), k=COMPLEMENTARY.default("k"),
                      category=COMPLEMENTARY.default("category"),
                      item_category=COMPLEMENTARY.default("item_category"),
                      exclude_item_ids=COMPLEMENTARY.default("exclude_item_ids")):
        """The k items that best complete each anchor, of its complementary categories (or
        the asked one), by cosine of style vectors: [B, K]."""
        batch, rows, from_image, k, category, category_rows, excluded, image = self._anchors(
            "complementary", item_id, image, k, category, exclude_item_ids)
        item_category = broadcast_rows(item_category, batch, "item_category", ANCHOR)
        given = self.category_table.lookup(item_category)
        catalogue = tf.gather(self.item_category_rows, tf.maximum(rows, 0))
        anchor = tf.where(from_image, given, catalogue)  # -1: an image without item_category
        has_partners = tf.reduce_any(tf.gather(self.partner_categories, tf.maximum(anchor, 0)),
                                     axis=1) & (anchor >= 0)
        checks = [
            tf.debugging.assert_equal(
                tf.logical_or(tf.equal(item_category, ""), given >= 0), True,
                message=f"complementary: unknown item_category; the categories are "
                        f"{self.category_names}"),
            tf.debugging.assert_equal(
                from_image | tf.equal(item_category, "") | tf.equal(given, catalogue), True,
                message="complementary: item_category differs from the category of item_id in "
                        "the catalogue (leave it empty for a catalogue item)"),
            tf.debugging.assert_equal(
                tf.logical_or(tf.not_equal(category, ""), anchor >= 0), True,
                message="complementary: an image anchor needs its item_category (or the "
                        f"category wanted); one of: {self.category_names}"),
            tf.debugging.assert_equal(
                tf.logical_or(tf.not_equal(category, ""), has_partners), True,
                message=f"complementary: the category of the anchor has no complementary category "
                        f"in this model ({self.complement_names}); name the one wanted with "
                        "`category`"),
        ]
        with tf.control_dependencies(checks):
            wanted = tf.where(tf.equal(category, "")[:, None],
                              tf.gather(self.partner_categories, tf.maximum(anchor, 0)),
                              tf.one_hot(tf.maximum(category_rows, 0), self.n_categories,
                                         on_value=True, off_value=False))  # [B, C]
        queries = self.style_space.queries(rows, from_image, image, batch)
        return self._answer(self.style_space, queries, k, wanted, excluded)

    def signatures(self) -> dict:
        """Signature name -> function (``head_signatures``); ``serving_default`` =
        ``complementary``."""
        return head_signatures(self, LOOK)

    def index_report(self, parts: LookParts, min_recall: float | None) -> dict:
        """The partitioned indexes' parameters and recall@10 against brute force, each space
        queried with every item's own vector (held out of nothing: the query item itself is
        excluded, as the signatures exclude it), printed; raises below ``min_recall``."""
        categories = np.unique(parts.item_categories)
        category_rows = np.searchsorted(categories, parts.item_categories)
        report = {"kind": "partitioned"}
        for name, space in (("similar", self.similar_space), ("complementary",
                                                             self.style_space)):
            described = space.index.describe()
            recall = recall_against_brute_force(
                space.index, space.unit_vectors, category_rows, len(categories),
                space.unit_vectors, seen=scipy.sparse.identity(self.n_items, np.int8, "csr"))
            recall["self_excluded"] = recall.pop("seen_excluded")
            print(f"{name}: partitioned index: {describe_scan(described)}: recall@{recall['k']} "
                  f"against BruteForce {recall['any_category']:.3f} (any category), "
                  f"{recall['one_category']:.3f} (one category), {recall['self_excluded']:.3f} "
                  f"(the query item left out) on {recall['queries']:,} items' queries")
            refuse_low_recall(recall, min_recall, f"the {name} partitioned index")
            report[name] = {**described, "recall_at_10": recall}
        return report
