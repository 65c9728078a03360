"""The folder source's ``min_rating``: explicit ratings as implicit feedback, explicitly."""

import numpy as np
import pytest

from tfrec_fashion.data.dataset import FashionDataset, Interactions, Items, Ratings, Users
from tfrec_fashion.data.sources import FolderSource
from tfrec_fashion.errors import ConfigError


def _ratings_only(timestamps: bool = True) -> FashionDataset:
    # user c rates nothing >= 4, so it has no implicit feedback at that threshold.
    return FashionDataset(
        name="shop", users=Users(ids=np.array(["a", "b", "c"])),
        items=Items(ids=np.array(["x", "y", "z"]), category=np.full(3, "item")),
        ratings=Ratings(user=np.array([0, 0, 1, 2, 1], np.int32),
                        item=np.array([0, 1, 2, 0, 0], np.int32),
                        value=np.array([4.5, 2, 5, 3, 4], np.float32),
                        timestamp=np.array([30, 10, 20, 5, 40]) if timestamps else None),
        metadata={"rating_range": [0.5, 5]})


def test_min_rating_makes_ratings_implicit_feedback_and_drops_users_without_any(tmp_path):
    _ratings_only().save(tmp_path / "d")
    dataset = FolderSource(path=str(tmp_path / "d"), min_rating=4).build()
    np.testing.assert_array_equal(dataset.users.ids, ["a", "b"])
    np.testing.assert_array_equal(dataset.users.ids[dataset.interactions.user], ["a", "b", "b"])
    np.testing.assert_array_equal(dataset.items.ids[dataset.interactions.item], ["x", "z", "x"])
    np.testing.assert_array_equal(dataset.interactions.timestamp, [30, 20, 40])
    assert len(dataset.ratings) == 4  # c's rating leaves with c
    assert dataset.metadata["min_rating"] == 4 and dataset.metadata["k_core"]["users_dropped"] == 1
    assert FolderSource(path=str(tmp_path / "d")).build().interactions is None


def test_ratings_timestamps_round_trip_and_row_order_without_them(tmp_path):
    _ratings_only().save(tmp_path / "d")
    assert (tmp_path / "d" / "ratings.csv").read_text().splitlines()[0] == \
        "user_id,item_id,value,timestamp"
    np.testing.assert_array_equal(FashionDataset.load(tmp_path / "d").ratings.timestamp,
                                  [30, 10, 20, 5, 40])
    _ratings_only(timestamps=False).save(tmp_path / "e")
    assert FashionDataset.load(tmp_path / "e").ratings.timestamp is None
    dataset = FolderSource(path=str(tmp_path / "e"), min_rating=0.5).build()
    np.testing.assert_array_equal(dataset.interactions.timestamp, [0, 1, 2, 3, 4])


@pytest.mark.parametrize("min_rating, message", [
    (6, r"data.min_rating \(.*\): 6 is outside the dataset's ratings 0.5..5"),
    (5.0, None),
])
def test_min_rating_outside_the_scale(tmp_path, min_rating, message):
    _ratings_only().save(tmp_path / "d")
    source = FolderSource(path=str(tmp_path / "d"), min_rating=min_rating)
    if message is None:
        assert len(source.build().interactions) == 1
    else:
        with pytest.raises(ConfigError, match=message):
            source.build()


def test_min_rating_without_ratings_says_so(tmp_path):
    FashionDataset(name="log", users=Users(ids=np.array(["a"])),
                   items=Items(ids=np.array(["x"]), category=np.array(["item"])),
                   interactions=Interactions(np.array([0], np.int32), np.array([0], np.int32),
                                             np.array([1]))).save(tmp_path / "d")
    with pytest.raises(ConfigError, match=r"dataset 'log' has no ratings \(ratings.csv\) to take "
                                          r"implicit feedback from; remove min_rating"):
        FolderSource(path=str(tmp_path / "d"), min_rating=4).build()
