"""Set membership per row, ``values[b, f] in sets[b]``, without a [B, F, M] comparison.

Both retrieval indexes leave out excluded items (what the caller already showed, what the user
bought) after fetching ``k + M`` candidates for M exclusions. Comparing every candidate with
every exclusion costs B x (k + M) x M: with 1,000 exclusions a batch of 256 rows made a
quarter-billion-element tensor. Sorting each row's set and binary-searching the candidates costs
B x (M log M + (k + M) log M) time and B x (k + 2M) memory, with stock ops only (``TopKV2``
through ``tf.sort``, ``LowerBound``), so exports keep running under TensorFlow Serving.
"""

from __future__ import annotations

import tensorflow as tf


def in_row_sets(values: tf.Tensor, sets: tf.Tensor) -> tf.Tensor:
    """bool [B, F]: whether ``values[b, f]`` is one of ``sets[b, :]``.

    Args:
        values: [B, F] numeric (item rows) or strings.
        sets: [B, M] of the same dtype, in any order, duplicates allowed; M may be 0.

    Strings cannot be sorted in-graph, so they are compared pairwise (B x F x M); numeric
    values take the sorted path.
    """
    values = tf.convert_to_tensor(values)
    sets = tf.convert_to_tensor(sets, values.dtype)
    if values.dtype == tf.string:
        return tf.reduce_any(values[:, :, None] == sets[:, None, :], axis=-1)
    width = tf.shape(sets)[1]
    ordered = tf.sort(sets, axis=1)
    # One spare column so that a position equal to M (past every member) can be gathered; the
    # ``position < width`` test keeps it from ever counting as a member.
    padded = tf.concat([ordered, tf.zeros(tf.stack([tf.shape(sets)[0], 1]), sets.dtype)],
                       axis=1)
    position = tf.searchsorted(ordered, values, side="left")
    found = tf.gather(padded, position, batch_dims=1)
    return tf.logical_and(position < width, tf.equal(found, values))
