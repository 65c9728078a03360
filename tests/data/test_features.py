"""Interpretable item features: one-hot attribute columns (I-VBPR), names, missing values."""

import numpy as np
import pytest

from tfrec_fashion.data.dataset import Items
from tfrec_fashion.data.features import attribute_onehot
from tfrec_fashion.errors import ConfigError


def _items():
    return Items(ids=np.array(["i0", "i1", "i2", "i3"]),
                 category=np.array(["top", "shoes", "top", "bottom"]),
                 attributes={"colour": np.array(["red", "blue", "", "red"]),
                             "pattern": np.array(["striped", "plain", "plain", "dotted"])})


def test_onehot_names_sorted_per_column_and_rows_one_hot():
    features, names = attribute_onehot(_items(), ["colour", "pattern"])
    assert names == ["colour=blue", "colour=red",
                     "pattern=dotted", "pattern=plain", "pattern=striped"]
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features, [[0, 1, 0, 0, 1],
                                             [1, 0, 0, 1, 0],
                                             [0, 0, 0, 1, 0],   # missing colour: all-zero block
                                             [0, 1, 1, 0, 0]])
    # the column order given is the block order
    _, names = attribute_onehot(_items(), ["pattern", "colour"])
    assert names[:3] == ["pattern=dotted", "pattern=plain", "pattern=striped"]


def test_onehot_category_column_and_default_columns():
    features, names = attribute_onehot(_items(), ["category"])
    assert names == ["category=bottom", "category=shoes", "category=top"]
    np.testing.assert_array_equal(features, [[0, 0, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    everything, all_names = attribute_onehot(_items())
    assert all_names == names + ["colour=blue", "colour=red",
                                 "pattern=dotted", "pattern=plain", "pattern=striped"]
    np.testing.assert_array_equal(everything[:, :3], features)
    np.testing.assert_array_equal(everything.sum(axis=1), [3, 3, 2, 3])
    only_category, names = attribute_onehot(Items(ids=np.array(["a", "b"]),
                                                  category=np.array(["x", "y"])))
    assert names == ["category=x", "category=y"]
    np.testing.assert_array_equal(only_category, np.eye(2))


def test_onehot_missing_values_none_and_empty():
    items = Items(ids=np.array(["a", "b", "c"]), category=np.array(["t", "t", "t"]),
                  attributes={"brand": np.array(["acme", None, ""], dtype=object)})
    features, names = attribute_onehot(items, ["brand"])
    assert names == ["brand=acme"]
    np.testing.assert_array_equal(features, [[1], [0], [0]])


def test_onehot_unknown_column_lists_available_ones():
    with pytest.raises(ConfigError, match=r"the items have no attribute 'sleeve'; they have "
                                          r"\['category', 'colour', 'pattern'\]"):
        attribute_onehot(_items(), ["colour", "sleeve"])
    with pytest.raises(ConfigError, match=r"no attribute columns to encode"):
        attribute_onehot(_items(), [])
