"""``in_row_sets``: per-row membership equals Python's ``in``, for every set width (0 too),
integer extremes and strings, and needs no [B, F, M] tensor."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.layers.row_sets import in_row_sets


def _reference(values, sets):
    return np.array([[value in set(row_set.tolist()) for value in row]
                     for row, row_set in zip(values, sets)], dtype=bool).reshape(values.shape)


@pytest.mark.parametrize("width", [0, 1, 7, 60])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_membership_equals_pythons(width, dtype):
    rng = np.random.default_rng(width)
    values = rng.integers(-1, 40, (9, 25)).astype(dtype)
    sets = rng.integers(-1, 40, (9, width)).astype(dtype)  # duplicates and -1 padding included
    np.testing.assert_array_equal(in_row_sets(values, sets).numpy(), _reference(values, sets))


def test_integer_extremes_are_neither_lost_nor_invented():
    info = np.iinfo(np.int32)
    values = np.array([[info.min, info.max, 0, 5]], np.int32)
    np.testing.assert_array_equal(in_row_sets(values, values[:, ::-1]).numpy(), [[1, 1, 1, 1]])
    np.testing.assert_array_equal(in_row_sets(values, values[:, :1]).numpy(), [[1, 0, 0, 0]])
    # A value past every member must not match the spare column.
    np.testing.assert_array_equal(
        in_row_sets(np.array([[0, 9]], np.int32), np.array([[-3]], np.int32)).numpy(), [[0, 0]])


def test_strings_are_compared_pairwise():
    values = np.array([[b"a", b"b", b""]], object)
    sets = np.array([[b"b", b""]], object)
    np.testing.assert_array_equal(in_row_sets(values, sets).numpy(), [[0, 1, 1]])


def test_numeric_membership_never_builds_a_cube():
    graph = tf.function(in_row_sets).get_concrete_function(
        tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32)).graph
    assert "LowerBound" in {node.type for node in graph.get_operations()}
    assert all(len(op.outputs[0].shape) <= 2 for op in graph.get_operations()
               if op.outputs and op.outputs[0].shape.rank is not None)
