"""MovieLens converter: u.data, ratings.dat and ratings.csv (by name, by content, as a release
folder), titles and genres from the movies files, half stars, one-line errors, nothing written
on failure; and the movielens_100k source reading another copy (``path``)."""

import numpy as np
import pytest

from tfrec_fashion.data.converters import CONVERTERS
from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.movielens import MovieLens100K
from tfrec_fashion.errors import DataError, MissingDataError

convert = CONVERTERS["movielens"]


@pytest.mark.parametrize("name, half_stars, rating_range", [
    ("u.data", False, [1.0, 5.0]),        # ML-100K
    ("ratings.dat", False, [1.0, 5.0]),   # ML-1M
    ("ratings.dat", True, [0.5, 5.0]),    # ML-10M
    ("ratings.csv", True, [0.5, 5.0]),    # ml-latest
])
def test_each_format_converts_with_timestamps_and_its_star_range(
        tmp_path, write_movielens, name, half_stars, rating_range):
    source = write_movielens(tmp_path / "src", name, half_stars)
    dataset = convert(source, tmp_path / "out")
    assert dataset.counts() == {"users": 8, "items": 12, "ratings": 64}
    saved = FashionDataset.load(tmp_path / "out")
    assert saved.metadata["rating_range"] == rating_range
    assert saved.metadata["format"] == name
    assert saved.interactions is None  # implicit feedback is chosen at training (min_rating)
    # Numeric id order; the first row of the file is user 1, movie 105, 5 stars at 880001000.
    np.testing.assert_array_equal(saved.users.ids, [str(u) for u in range(1, 9)])
    assert saved.items.ids[0] == "100" and saved.items.ids[-1] == "111"
    first = (saved.users.ids[saved.ratings.user[0]], saved.items.ids[saved.ratings.item[0]],
             saved.ratings.value[0], saved.ratings.timestamp[0])
    assert first == ("1", "105", 5.0, 880001000)
    assert (saved.ratings.value == 4.5).any() == half_stars


def test_format_is_found_by_content_and_in_a_release_folder(tmp_path, write_movielens):
    dat = write_movielens(tmp_path / "a", "ratings.dat")
    renamed = dat.rename(tmp_path / "a" / "ml1m_export.txt")
    assert convert(renamed, tmp_path / "o1").metadata["format"] == "ratings.dat"
    udata = write_movielens(tmp_path / "b", "u.data")
    assert convert(udata.rename(tmp_path / "b" / "log.tsv"),
                   tmp_path / "o2").metadata["format"] == "u.data"
    write_movielens(tmp_path / "ml-latest-small", "ratings.csv", half_stars=True)
    dataset = convert(tmp_path / "ml-latest-small", tmp_path / "o3")
    assert dataset.name == "movielens_ml-latest-small" and len(dataset.ratings) == 64


def test_titles_and_genres_come_from_the_movies_file_beside(tmp_path, write_movielens):
    write_movielens(tmp_path / "ml-100k", "u.data")
    flags = ["0"] * 19
    flags[5] = flags[8] = "1"  # Comedy, Drama in u.genre order
    (tmp_path / "ml-100k" / "u.item").write_bytes(
        ("100|Caf\xe9 Society (1995)|01-Jan-1995||http://x|" + "|".join(flags) + "\n"
         "999|Never Rated (1990)|||http://y|" + "|".join(["1"] + ["0"] * 18) + "\n"
         ).encode("latin-1"))
    dataset = FashionDataset.load(convert(tmp_path / "ml-100k", tmp_path / "o1") and
                                  tmp_path / "o1")
    assert dataset.items.titles[0] == "Caf\xe9 Society (1995)"
    assert dataset.items.attributes["genres"][0] == "Comedy|Drama"
    assert dataset.items.titles[1] == ""  # rated, not in u.item
    assert dataset.metadata["stats"] == {"movies_not_rated": 1, "rated_movies_without_title": 11}

    write_movielens(tmp_path / "ml-latest", "ratings.csv", half_stars=True)
    (tmp_path / "ml-latest" / "movies.csv").write_text(
        'movieId,title,genres\n101,"American President, The (1995)",Comedy|Drama|Romance\n')
    items = convert(tmp_path / "ml-latest", tmp_path / "o2").items
    assert items.titles[1] == "American President, The (1995)"
    write_movielens(tmp_path / "ml-1m", "ratings.dat")
    (tmp_path / "ml-1m" / "movies.dat").write_text("111::Heat (1995)::Action|Crime|Thriller\n")
    items = convert(tmp_path / "ml-1m", tmp_path / "o3").items
    assert (items.titles[-1], items.attributes["genres"][-1]) == ("Heat (1995)",
                                                                  "Action|Crime|Thriller")


@pytest.mark.parametrize("name, text, message", [
    ("ratings.csv", "", r"ratings.csv: empty file"),
    ("ratings.csv", "userId,movieId,rating\n1,2,3\n",
     r"ratings.csv, line 1: expected the header 'userId,movieId,rating,timestamp'"),
    ("ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n1,3,good,5\n",
     r"ratings.csv, line 3: rating 'good' is not a number"),
    ("ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n1,3,5.5,5\n",
     r"ratings.csv, line 3: rating '5.5' is outside 0.5..5"),
    ("ratings.csv", "userId,movieId,rating,timestamp\n", r"ratings.csv: no ratings"),
    ("u.data", "1\t2\t3\t4\n1\t3\t4\n", r"u.data, line 2: expected 4 tab-separated columns"),
    ("u.data", "1\t2\t4.5\t4\n1\t3\t0\t4\n", r"u.data, line 2: rating '0' is outside 1..5"),
    ("ratings.dat", "1::2::3::4\n1::2::4::5\n",
     r"ratings.dat, line 2: repeats the \(user, item\) pair of line 1"),
    ("ratings.dat", "1::2::3::yesterday\n", r"line 1: timestamp 'yesterday' is not a number"),
    ("my.txt", "1;2;3;4\n", r"my.txt, line 1: not a MovieLens rating file"),
])
def test_bad_input_names_file_and_line_and_writes_nothing(tmp_path, name, text, message):
    source = tmp_path / name
    source.write_text(text)
    with pytest.raises(DataError, match=message) as info:
        convert(source, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no output, no staging folder


def test_missing_source_and_folder_without_ratings(tmp_path):
    with pytest.raises(MissingDataError, match="does not exist"):
        convert(tmp_path / "absent.csv", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDataError, match="holds none of the MovieLens rating files"):
        convert(tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_movielens_100k_source_reads_another_copy(tmp_path, write_movielens):
    udata = write_movielens(tmp_path / "ml-100k", "u.data")
    for path in (udata, tmp_path / "ml-100k"):
        dataset = MovieLens100K(path=str(path), min_rating=4).build()
        assert dataset.counts() == {"users": 8, "items": 12, "interactions": 32, "ratings": 64}
        assert dataset.metadata["path"] == str(path)
        np.testing.assert_array_equal(dataset.ratings.timestamp[:2], [880001000, 880001010])
    with pytest.raises(MissingDataError, match="do not exist"):
        MovieLens100K(path=str(tmp_path / "nowhere")).build()


def test_the_three_formats_of_one_log_give_the_same_dataset(tmp_path, write_movielens):
    tables = []
    for name in ("u.data", "ratings.dat", "ratings.csv"):
        convert(write_movielens(tmp_path / name, name), tmp_path / f"out_{name}")
        tables.append([(tmp_path / f"out_{name}" / table).read_bytes()
                       for table in ("users.csv", "items.csv", "ratings.csv")])
    assert tables[0] == tables[1] == tables[2]
