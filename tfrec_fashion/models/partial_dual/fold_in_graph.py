"""Partial Dual fold-in in TensorFlow ops: ``fold_in.FoldIn``'s closed form (FI),

    b_c = b0 + sum(r - offset - b_J - b0) / (n + bias_l2)          (with biases; else 0)
    a   = a0 + (B_J^T B_J + (s / C) I)^{-1} B_J^T (r - offset - b_c - b_J - B_J a0),

(a0, b0) = (0, 0), or the cold-start customer with ``shrink_to="cold_start"``,

as a graph-safe function of variable-length votes over the fitted item factors held as
constants, for a served signature to call (issue 24). Stock ops only: ``tf.gather`` of the voted
items' rows, one k x k Gram matrix, ``tf.linalg.cholesky`` / ``cholesky_solve`` (the matrix is
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

    def user_vector(self, item_index: tf.Tensor, rating: tf.Tensor) -> tf.Tensor:
        """[d] folded-in customer vector (file layout: a, or [a, b_c, 1]) from int item
        indices [n] and votes [n], n >= 0; the cold-start vector for n = 0."""
        item_index = tf.cast(item_index, tf.int64)
        rating = tf.cast(rating, self.dtype)
        n_items = tf.shape(self.column_factors, out_type=tf.int64)[0]
        unknown = (item_index < 0) | (item_index >= n_items)
        outside = tf.logical_not(tf.math.is_finite(rating) & (rating >= self.low)
                                 & (rating <= self.high))
        checks = [
            tf.debugging.assert_equal(tf.size(item_index), tf.size(rating), message=(
                "one vote per item is needed: items and votes differ in length")),
            tf.debugging.Assert(tf.logical_not(tf.reduce_any(unknown)), [
                "unknown item index(es):", tf.boolean_mask(item_index, unknown),
                "the model has items 0 ..", n_items - 1], summarize=5),
            tf.debugging.Assert(tf.logical_not(tf.reduce_any(outside)), [
                "vote value(s)", tf.boolean_mask(rating, outside),
                "outside the rating range [", self.low, ",", self.high, "]"], summarize=5),
        ]
        with tf.control_dependencies(checks):  # every use of the votes after the checks
            item_index, rating = tf.identity(item_index), tf.identity(rating)
        B_J = tf.gather(self.column_factors, item_index)  # [n, k]
        a0, b0 = self.prior_factor, self.prior_bias
        residual = rating - self.offset
        bias = b0
        if self.fold_in.has_biases:
            residual -= tf.gather(self.item_bias, item_index)
            count = tf.cast(tf.size(residual), self.dtype)
            # No votes with bias_l2 = 0 would divide 0 by 0: the cold start answers then.
            bias = b0 + tf.math.divide_no_nan(tf.reduce_sum(residual - b0),
                                              count + self.bias_l2)
            residual -= bias
        k = self.fold_in.rank
        # (FI): (B_J^T B_J + (s / C) I) (a - a0) = B_J^T (y - B_J a0), symmetric positive definite.
        gram = tf.matmul(B_J, B_J, transpose_a=True) + self.ridge * tf.eye(k, dtype=self.dtype)
        rhs = tf.matmul(B_J, (residual - tf.linalg.matvec(B_J, a0))[:, None], transpose_a=True)
        factor = a0 + tf.linalg.cholesky_solve(tf.linalg.cholesky(gram), rhs)[:, 0]
        vector = factor
        if self.fold_in.has_biases:
            vector = tf.concat([factor, tf.stack([bias, tf.ones([], self.dtype)])], 0)
        return tf.where(tf.size(rating) > 0, vector, self.cold_start)
