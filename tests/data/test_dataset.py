"""The dataset layout: every table round-trips through disk, and bad files fail naming the
file and row."""

import numpy as np
import pytest

from tfrec_fashion.data.dataset import (FashionDataset, Interactions, Items, Outfits, PairRatings,
                                        Ratings, Triplets, Users)
from tfrec_fashion.errors import DataError, MissingDataError


def small_dataset(images=True):
    rng = np.random.default_rng(0)
    return FashionDataset(
        name="small",
        users=Users(np.array(["u0", "u1"]), {"age": np.array([31, 45])}),
        items=Items(np.array(["a", "b", "c"]), np.array(["top", "bottom", "shoes"]),
                    {"colour": np.array(["red", "blue", "red"]), "price": np.array([1.5, 2.0, 3.25])},
                    titles=np.array(["red top", "blue jeans, slim", "red shoes"]),
                    images=rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8) if images else None,
                    features=rng.normal(size=(3, 4)).astype(np.float32)),
        interactions=Interactions(np.array([0, 1, 1], np.int32), np.array([2, 1, 0], np.int32),
                                  np.array([5, 6, 7], np.int64)),
        ratings=Ratings(np.array([0], np.int32), np.array([1], np.int32), np.array([-1.0], np.float32)),
        pair_ratings=PairRatings(np.array([1], np.int32), np.array([0], np.int32),
                                 np.array([1], np.int32), np.array([1], np.int8)),
        outfits=Outfits(np.array(["o1", "o2"]), np.array([-1, 0], np.int32),
                        np.array([[0, 1, -1], [0, 1, 2]], np.int32), ("top", "bottom", "shoes")),
        triplets=Triplets(np.array([0], np.int32), np.array([1], np.int32), np.array([2], np.int32)),
        metadata={"rating_range": [-1, 1], "source": "test"},
        truth={"user_item_score": np.arange(6, dtype=np.float32).reshape(2, 3)},
    )


def test_every_table_round_trips(tmp_path):
    original = small_dataset()
    loaded = FashionDataset.load(original.save(tmp_path / "d"), load_images=True)
    assert loaded.counts() == original.counts()
    np.testing.assert_array_equal(loaded.items.images, original.items.images)
    np.testing.assert_array_equal(loaded.items.features, original.items.features)
    np.testing.assert_array_equal(loaded.items.attributes["price"], [1.5, 2.0, 3.25])
    np.testing.assert_array_equal(loaded.users.features["age"], [31, 45])
    assert loaded.items.titles[1] == "blue jeans, slim"
    for table in ("interactions", "ratings", "pair_ratings", "triplets"):
        for name, value in vars(getattr(original, table)).items():
            np.testing.assert_array_equal(getattr(getattr(loaded, table), name), value)
    np.testing.assert_array_equal(loaded.outfits.items, original.outfits.items)
    np.testing.assert_array_equal(loaded.outfits.user, [-1, 0])
    assert loaded.outfits.slots == ("top", "bottom", "shoes")
    np.testing.assert_array_equal(loaded.truth["user_item_score"], original.truth["user_item_score"])
    assert loaded.metadata == original.metadata


def test_absent_tables_stay_absent(tmp_path):
    dataset = FashionDataset("bare", Users(np.array(["u"])), Items(np.array(["i"]), np.array(["top"])))
    loaded = FashionDataset.load(dataset.save(tmp_path / "bare"))
    assert loaded.interactions is None and loaded.outfits is None and loaded.items.images is None


def corrupt(tmp_path, file, old, new):
    folder = small_dataset().save(tmp_path / "d")
    path = folder / file
    path.write_text(path.read_text().replace(old, new, 1))
    return folder


@pytest.mark.parametrize("file, old, new, error, message", [
    ("interactions.csv", "u1,b", "u9,b", DataError, r"interactions\.csv, line 3: unknown user_id 'u9'"),
    ("triplets.csv", "a,b,c", "a,b,zz", DataError, r"triplets\.csv, line 2: unknown item_id 'zz'"),
    ("items.csv", "b,bottom", "a,bottom", DataError, r"items\.csv: duplicate ids \['a'\]"),
    ("pair_ratings.csv", "u1,a,b,1", "u1,a,b,2", DataError, r"pair_ratings row 0 has label 2"),
    ("ratings.csv", "u0,b,-1.0", "u0,b,7", DataError, r"ratings row 0 has value 7\.0, outside rating_range"),
    ("interactions.csv", "u0,c,5", "u0,c,soon", DataError, r"interactions\.csv, line 2: timestamp 'soon' is not a number"),
    ("interactions.csv", "u0,c,5", "u0,c,5,9", DataError, r"interactions\.csv, line 2: 4 fields, header has 3"),
    ("dataset.json", '"format_version": 1', '"format_version": 9', DataError, r"format_version 9"),
])
def test_bad_files_are_named_with_their_row(tmp_path, file, old, new, error, message):
    with pytest.raises(error, match=message):
        FashionDataset.load(corrupt(tmp_path, file, old, new))


def test_missing_and_corrupt_images_are_named(tmp_path):
    folder = small_dataset().save(tmp_path / "d")
    (folder / "images" / "1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"image .*images/1\.png is corrupt"):
        FashionDataset.load(folder, load_images=True)
    (folder / "images" / "1.png").unlink()
    with pytest.raises(MissingDataError, match=r"items\.csv, line 3: image 'images/1\.png' does not exist"):
        FashionDataset.load(folder)


def test_not_a_dataset_says_how_to_make_one(tmp_path):
    with pytest.raises(MissingDataError, match="tfrec-fashion data synth"):
        FashionDataset.load(tmp_path)


def test_in_memory_validation_names_the_table():
    with pytest.raises(DataError, match=r"interactions\.item: index 5 at row 0 is outside \[0, 1\)"):
        FashionDataset("x", Users(np.array(["u"])), Items(np.array(["i"]), np.array(["top"])),
                       interactions=Interactions(np.array([0], np.int32), np.array([5], np.int32),
                                                 np.array([0])))


def test_readme_example_folder_loads_and_is_what_the_readme_lists():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    folder = root / "examples" / "tiny_shop"
    dataset = FashionDataset.load(folder)
    assert dataset.counts() == {"users": 3, "items": 4, "interactions": 6, "ratings": 4}
    assert dataset.metadata["rating_range"] == [0.5, 5]
    assert dataset.ratings.value.min() == 0.5 and dataset.ratings.timestamp is not None
    readme = (root / "README.md").read_text()
    for table in ("users.csv", "items.csv", "interactions.csv", "ratings.csv"):
        header, first = (folder / table).read_text().splitlines()[:2]
        assert f"{header:<37}{first}" in readme.replace(f"{table:<19}", ""), table
