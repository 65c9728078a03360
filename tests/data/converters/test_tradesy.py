"""Tradesy (VBPR) user lists + image_features_tradesy.b -> dataset layout."""

import numpy as np
import pytest

from tfrec_fashion.data.converters import CONVERTERS, tradesy
from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.errors import DataError


@pytest.fixture
def tradesy_features(tmp_path, write_features, feature_vector):
    # The 10-byte id field padded three ways: spaces, leading zeros, NULs. Item 7 has no record.
    return write_features(tmp_path / "image_features_tradesy.b", [
        (b"466       ", feature_vector(0)), (b"0000005745", feature_vector(1)),
        (b"1003\x00\x00\x00\x00\x00\x00", feature_vector(2)), (b"99999     ", feature_vector(3))])


def test_bought_and_want_with_features_round_trip(fixtures, tradesy_features, tmp_path,
                                                  feature_vector):
    CONVERTERS["tradesy"](fixtures / "tradesy/tradesy.json", tradesy_features, tmp_path / "out")
    data = FashionDataset.load(tmp_path / "out")
    # uid 2 has only selling/sold actions; item 7 has no feature vector and is dropped.
    assert data.users.ids.tolist() == ["1", "3"]
    assert data.items.ids.tolist() == ["466", "5745", "1003"]
    assert data.items.category.tolist() == ["unknown"] * 3
    pairs = list(zip(data.users.ids[data.interactions.user], data.items.ids[data.interactions.item]))
    assert pairs == [("1", "466"), ("1", "5745"), ("1", "1003"), ("3", "1003")]
    assert data.interactions.timestamp.tolist() == [0, 0, 0, 0]
    np.testing.assert_array_equal(data.items.features,
                                  np.stack([feature_vector(k) for k in range(3)]))
    assert data.metadata["feedback"] == ["bought", "want"]
    assert data.metadata["skipped"] == {
        "users_without_selected_feedback": 1, "items_without_features": 1,
        "interactions_of_items_without_features": 1, "users_left_without_interactions": 0}
    assert data.metadata["stats"]["repeated_user_item_actions_merged"] == 1  # uid 3's 1003


def test_every_list_and_zero_features(fixtures, tradesy_features, tmp_path):
    tradesy.convert(fixtures / "tradesy/tradesy.json", tmp_path / "out",
                    features_path=tradesy_features, missing_features="zeros",
                    feedback=("bought", "want", "selling", "sold"))
    data = FashionDataset.load(tmp_path / "out")
    assert data.users.ids.tolist() == ["1", "2", "3"]
    assert data.items.ids.tolist() == ["466", "5745", "1003", "12", "88", "7"]
    assert data.items.attributes["has_feature"].tolist() == [1, 1, 1, 0, 0, 0]
    assert len(data.interactions) == 8


@pytest.mark.parametrize("line, message", [
    ("{'uid': '4'}", r"tradesy\.json, line 2: missing field\(s\) \['lists'\]"),
    ("{'uid': '1', 'lists': {'bought': [], 'want': []}}",
     r"tradesy\.json, line 2: uid '1' already appeared on line 1"),
    ("{'uid': '4', 'lists': {'bought': ['1'], 'want': '1003'}}",
     r"tradesy\.json, line 2: lists\['want'\] should be a list"),
    ("{'uid': '4', 'lists': {'bought': ['1']}}",
     r"tradesy\.json, line 2: missing field\(s\) \['want'\]"),
    ("{'uid': '4', 'lists': {'bought': ['1'], 'want': [}", r"tradesy\.json, line 2: neither JSON"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "tradesy.json"
    path.write_text("{'uid': '1', 'lists': {'bought': ['466'], 'want': []}}\n" + line + "\n")
    with pytest.raises(DataError, match=message):
        tradesy.convert(path, tmp_path / "out")


def test_unknown_feedback_list_is_rejected(fixtures, tmp_path):
    with pytest.raises(ValueError, match="Received: feedback=\\('clicked',\\)"):
        tradesy.convert(fixtures / "tradesy/tradesy.json", tmp_path / "out", feedback=("clicked",))
