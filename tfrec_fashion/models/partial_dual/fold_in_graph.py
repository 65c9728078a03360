"""Partial Dual fold-in in TensorFlow ops: ``fold_in.FoldIn``'s closed form (FI),

    b_c = b0 + sum(r - offset - b_J - b0) / (n + bias_l2)          (with biases; else 0)
    a   = a0 + (B_J^T B_J + (s / C) I)^{-1} B_J^T (r - offset - b_c - b_J - B_J a0),

(a0, b0) = (0, 0), or the cold-start customer with ``shrink_to="cold_start"``,

as a graph-safe function of variable-length votes over the fitted item factors held as
constants, for a served signature to call (issue 24): one customer's votes (``user_vector``), or
a batch of customers' votes padded with "" ids to one width (``user_vectors_by_id``, what the
retrieval head's ``recommend_new_customer`` calls; padding is a zero row of B_J, so each row is
its own customer's closed form). Stock ops only: ``tf.gather`` of the voted items' rows, one
k x k Gram matrix per customer, ``tf.linalg.cholesky`` / ``cholesky_solve`` (the matrix is
symmetric positive definite: its smallest eigenvalue is s / C > 0), and ``tf.where`` for the
cold start (no votes: ``FoldIn.cold_start``). It equals the NumPy ``FoldIn.user_vector`` to
float rounding (tested): the derivation is in ``fold_in.py``.

Bad input fails inside the graph as ``tf.errors.InvalidArgumentError`` naming it: an item index
outside [0, n_items), an unknown item id (with ``item_ids``), a vote outside the rating range
(or not finite), votes and items of different lengths.

This is the only file of ``models/partial_dual`` that imports TensorFlow; the package's
``__init__`` does not import it.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec_fashion.models.partial_dual.fold_in import FoldIn


class FoldInGraph(tf.Module):
    """``FoldIn`` as TensorFlow ops over constants, callable inside ``tf.function``.

    Args:
        fold_in: the fitted model's NumPy ``FoldIn`` (its arrays become constants).
        dtype: float dtype of the computation (float32 for serving; float64 to match NumPy
            to double rounding).

    Example:

        graph = FoldInGraph(recipe.fold_in(model))
        serve = tf.function(graph.user_vector, input_signature=[
            tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.float32)])
        vector = serve(tf.constant([3, 150], tf.int64), tf.constant([1.0, -1.0]))   # [d]
    """

    def __init__(self, fold_in: FoldIn, dtype: tf.DType = tf.float32, name: str | None = None):
        super().__init__(name=name)
        self.fold_in = fold_in
        self.dtype = tf.as_dtype(dtype)
        # === Constants: the fitted item side (B, b_i) and the scalars of (FI) ===
        self.column_factors = tf.constant(fold_in.column_factors, self.dtype)
        self.item_bias = tf.constant(
            fold_in.item_bias if fold_in.has_biases else np.zeros(fold_in.n_items), self.dtype)
        self.offset = tf.constant(fold_in.offset, self.dtype)
        self.ridge = tf.constant(fold_in.ridge, self.dtype)
        self.bias_l2 = tf.constant(fold_in.bias_l2, self.dtype)
        self.cold_start = tf.constant(fold_in.cold_start, self.dtype)
        self.prior_factor, self.prior_bias = (tf.constant(v, self.dtype)
                                              for v in fold_in.prior())
        self.low, self.high = (tf.constant(v, self.dtype) for v in fold_in.rating_range)
        self.item_table = None
        if fold_in.item_ids is not None:
            self.item_table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                tf.constant(fold_in.item_ids), tf.range(fold_in.n_items, dtype=tf.int64)), -1)

    def item_indices(self, item_ids: tf.Tensor) -> tf.Tensor:
        """int64 [n] indices of string ``item_ids`` [n]; an unknown id is an
        InvalidArgumentError naming it."""
        if self.item_table is None:
            raise ValueError("this FoldIn has no item ids: pass item indices")
        index = self.item_table.lookup(item_ids)
        unknown = index < 0
        check = tf.debugging.Assert(tf.logical_not(tf.reduce_any(unknown)), [
            "unknown item id(s):", tf.boolean_mask(item_ids, unknown)], summarize=5)
        with tf.control_dependencies([check]):
            return tf.identity(index)

    def user_vector_by_id(self, item_ids: tf.Tensor, rating: tf.Tensor) -> tf.Tensor:
        """``user_vector`` for votes naming items by string id."""
        return self.user_vector(self.item_indices(item_ids), rating)

    def user_vectors_by_id(self, item_ids: tf.Tensor, rating: tf.Tensor) -> tf.Tensor:
        """[B, d] folded-in vectors of B customers' votes, string ``item_ids`` [B, M] and
        ``rating`` [B, M]: an id "" is padding (its vote ignored, whatever it holds), so rows
        may hold different numbers of votes; a row of padding gets the cold-start vector. An
        unknown id, a vote outside the rating range and shapes that differ are each an
        InvalidArgumentError naming them."""
        if self.item_table is None:
            raise ValueError("this FoldIn has no item ids: pass item indices")
        same_shape = tf.debugging.assert_equal(
            tf.shape(item_ids), tf.shape(rating), message=(
                "one vote per item is needed: item ids and votes differ in shape"))
        with tf.control_dependencies([same_shape]):
            present = tf.not_equal(item_ids, "")
        index = self.item_table.lookup(item_ids)
        unknown = present & (index < 0)
        check = tf.debugging.Assert(tf.logical_not(tf.reduce_any(unknown)), [
            "unknown item id(s):", tf.boolean_mask(item_ids, unknown)], summarize=5)
        with tf.control_dependencies([check]):
            index = tf.identity(index)
        return self.user_vectors(index, rating, present)

    def user_vector(self, item_index: tf.Tensor, rating: tf.Tensor) -> tf.Tensor:
        """[d] folded-in customer vector (file layout: a, or [a, b_c, 1]) from int item
        indices [n] and votes [n], n >= 0; the cold-start vector for n = 0."""
        size_check = tf.debugging.assert_equal(tf.size(item_index), tf.size(rating), message=(
            "one vote per item is needed: items and votes differ in length"))
        with tf.control_dependencies([size_check]):
            return self.user_vectors(tf.reshape(item_index, [1, -1]),
                                     tf.reshape(rating, [1, -1]))[0]

    def user_vectors(self, item_index: tf.Tensor, rating: tf.Tensor,
                     present: tf.Tensor | None = None) -> tf.Tensor:
        """[B, d] folded-in vectors (file layout) from int item indices [B, M] and votes
        [B, M]; ``present`` bool [B, M] marks the real votes (False: padding, whose index and
        vote are ignored; default all real). A row with none gets the cold-start vector.

        Padding enters (FI) as a zero row of B_J and a zero residual, which adds nothing to
        B_J^T B_J or B_J^T y, so each row is the one-customer closed form of its real votes."""
        item_index = tf.cast(item_index, tf.int64)
        rating = tf.cast(rating, self.dtype)
        if present is None:
            present = tf.ones_like(item_index, tf.bool)
        n_items = tf.shape(self.column_factors, out_type=tf.int64)[0]
        unknown = present & ((item_index < 0) | (item_index >= n_items))
        outside = present & tf.logical_not(tf.math.is_finite(rating) & (rating >= self.low)
                                           & (rating <= self.high))
        checks = [
            tf.debugging.assert_equal(tf.shape(item_index), tf.shape(rating), message=(
                "one vote per item is needed: items and votes differ in shape")),
            tf.debugging.Assert(tf.logical_not(tf.reduce_any(unknown)), [
                "unknown item index(es):", tf.boolean_mask(item_index, unknown),
                "the model has items 0 ..", n_items - 1], summarize=5),
            tf.debugging.Assert(tf.logical_not(tf.reduce_any(outside)), [
                "vote value(s)", tf.boolean_mask(rating, outside),
                "outside the rating range [", self.low, ",", self.high, "]"], summarize=5),
        ]
        with tf.control_dependencies(checks):  # every use of the votes after the checks
            item_index, rating = tf.identity(item_index), tf.identity(rating)
        weight = tf.cast(present, self.dtype)  # [B, M]: 1 for a vote, 0 for padding
        item_index = tf.where(present, item_index, 0)
        B_J = tf.gather(self.column_factors, item_index) * weight[..., None]  # [B, M, k]
        a0, b0 = self.prior_factor, self.prior_bias
        residual = (rating - self.offset) * weight
        count = tf.reduce_sum(weight, axis=1)  # [B]
        bias = tf.fill(tf.shape(count), b0)
        if self.fold_in.has_biases:
            residual -= tf.gather(self.item_bias, item_index) * weight
            # No votes with bias_l2 = 0 would divide 0 by 0: the cold start answers then.
            bias = b0 + tf.math.divide_no_nan(tf.reduce_sum((residual - b0) * weight, axis=1),
                                              count + self.bias_l2)
            residual -= bias[:, None] * weight
        k = self.fold_in.rank
        # (FI): (B_J^T B_J + (s / C) I) (a - a0) = B_J^T (y - B_J a0), symmetric positive definite.
        gram = (tf.einsum("bmk,bml->bkl", B_J, B_J)
                + self.ridge * tf.eye(k, dtype=self.dtype)[None])
        rhs = tf.einsum("bmk,bm->bk", B_J, residual - tf.einsum("bmk,k->bm", B_J, a0))
        factor = a0 + tf.linalg.cholesky_solve(tf.linalg.cholesky(gram), rhs[..., None])[..., 0]
        vector = factor
        if self.fold_in.has_biases:
            vector = tf.concat([factor, bias[:, None], tf.ones_like(bias)[:, None]], 1)
        return tf.where((count > 0)[:, None], vector, self.cold_start[None, :])
