"""MovieLens rating files (GroupLens, grouplens.org/datasets/movielens) -> the dataset layout.

Public formats, each read by ``data.movielens`` (one parser for the loader and this converter),
recognised by file name, else by the first line:

- ``u.data`` (ML-100K): ``user_id <tab> item_id <tab> rating <tab> timestamp``, no header, whole
  stars 1..5. Titles and genres from ``u.item`` beside it: ``movie id | title | release date |
  video release date | IMDb URL | 19 genre flags`` (Latin-1), genres in ``u.genre`` order.
- ``ratings.dat`` (ML-1M, ML-10M): ``UserID::MovieID::Rating::Timestamp``, no header; ML-10M has
  half stars. ``movies.dat`` beside it: ``MovieID::Title::Genres`` (genres "|"-separated).
- ``ratings.csv`` (ML-20M, ML-25M, ML-32M, ml-latest, ml-latest-small): header
  ``userId,movieId,rating,timestamp``, half stars 0.5..5. ``movies.csv`` beside it:
  ``movieId,title,genres`` (quoted CSV).

The source may also be the release folder (``ml-100k/``, ``ml-1m/``, ``ml-latest-small/``).

Output: users and items in numeric id order; ``ratings.csv`` with every rating and its
timestamp (no ``interactions.csv``: train implicit-feedback models with ``data.min_rating``,
e.g. ``--set data.min_rating=4``); items of category "movie", with ``title`` and a ``genres``
attribute ("|"-joined) when the movies file is there (movies nobody rated are left out, counted
in ``metadata.stats``); ``metadata.rating_range`` [1, 5] for whole stars, [0.5, 5] when any
rating is a half star.

Example:

    convert("ml-latest-small/ratings.csv", "data/ml_latest_small")
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from tfrec_fashion.data import movielens
from tfrec_fashion.data.converters import _tables
from tfrec_fashion.data.converters._io import PathLike, split_sources
from tfrec_fashion.data.dataset import FashionDataset, Items, Users
from tfrec_fashion.errors import DataError

# u.genre of ML-100K: the meaning of u.item's 19 flag columns, in order.
U_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
            "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
            "Romance", "Sci-Fi", "Thriller", "War", "Western")
# The movies file that goes with each ratings file.
MOVIES_FILES = {"u.data": "u.item", "ratings.dat": "movies.dat", "ratings.csv": "movies.csv"}


def convert(*paths: PathLike, output_dir: PathLike | None = None, movies: bool = True,
            name: str | None = None) -> FashionDataset:
    """Converts a MovieLens ``u.data``, ``ratings.dat`` or ``ratings.csv`` and saves the dataset.

    Args:
        paths: the ratings file (or its release folder), then the output folder (unless
            ``output_dir`` is given).
        movies: read titles and genres from the movies file beside the ratings, when present.
        name: dataset name; default ``movielens_<folder name>``, e.g. ``movielens_ml-1m``.

    Raises:
        DataError: malformed line (naming file and line), repeated (user, movie), non-empty
            output folder.
        MissingDataError: no source, or a folder without a rating file.
    """
    sources, output_dir = split_sources(paths, output_dir, "movielens")
    if len(sources) != 1:
        raise DataError(f"movielens: give one ratings file or folder, got {len(sources)}")
    ratings_path = movielens.find_rating_file(sources[0])
    with _tables.staging(output_dir) as staging:
        ml = movielens.load_movielens(ratings_path)
        layout = movielens.detect_rating_file(ratings_path, _first_line(ratings_path))
        stats: dict[str, int] = {}
        titles = genres = None
        movies_path = ratings_path.parent / MOVIES_FILES.get(layout.name, "")
        if movies and layout.name in MOVIES_FILES and movies_path.is_file():
            titles, genres = _read_movies(movies_path, ml.item_vocab, stats)
        dataset = FashionDataset(
            name=name or f"movielens_{ratings_path.resolve().parent.name}",
            users=Users(ids=ml.user_vocab.astype(str)),
            items=Items(ids=ml.item_vocab.astype(str), category=np.full(ml.n_items, "movie"),
                        attributes={} if genres is None else {"genres": genres},
                        titles=titles),
            ratings=movielens.movielens_ratings(ml),
            metadata={"source": "MovieLens (GroupLens)", "format": layout.name,
                      "files": [p.name for p in (ratings_path, movies_path if titles is not None
                                                 else None) if p],
                      "rating_range": list(movielens.star_range(ml.ratings))})
        _tables.save(dataset, staging, "movielens", {}, stats)
    return dataset


def _first_line(path: Path) -> str:
    with path.open("rb") as handle:
        return handle.readline().decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r\n")


def _read_movies(path: Path, item_vocab: np.ndarray, stats: dict[str, int]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Titles and "|"-joined genres aligned to ``item_vocab`` ("" for a movie not listed)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # u.item and ML-1M's movies.dat are ISO-8859-1
    records: dict[str, tuple[str, str]] = {}
    for number, fields in _movie_rows(path, text):
        records.setdefault(fields[0], fields[1:])
    position = {movie: k for k, movie in enumerate(item_vocab)}
    titles = np.full(len(item_vocab), "", dtype=object)
    genres = np.full(len(item_vocab), "", dtype=object)
    for movie, (title, genre) in records.items():
        k = position.get(movie)
        if k is not None:
            titles[k], genres[k] = title, genre
    stats["movies_not_rated"] = len(records) - int(sum(m in position for m in records))
    stats["rated_movies_without_title"] = int(sum(m not in records for m in item_vocab))
    return titles.astype(str), genres.astype(str)


def _movie_rows(path: Path, text: str):
    """Yields (line, (movie id, title, "|"-joined genres)) of u.item, movies.dat or movies.csv."""
    if path.name == "movies.csv":
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ["movieId", "title", "genres"]:
            raise DataError(f"{path}, line 1: expected the header 'movieId,title,genres', found "
                            f"{header!r}")
        for row in reader:
            if row:
                _check_fields(path, reader.line_num, row, 3)
                yield reader.line_num, (row[0], row[1], row[2])
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if path.name == "u.item":
            row = line.split("|")
            _check_fields(path, number, row, 5 + len(U_GENRES))
            flags = row[5:5 + len(U_GENRES)]
            yield number, (row[0], row[1], "|".join(g for g, f in zip(U_GENRES, flags)
                                                    if f.strip() == "1"))
        else:
            row = line.split("::")
            _check_fields(path, number, row, 3)
            yield number, (row[0], row[1], row[2])


def _check_fields(path: Path, number: int, row: list[str], expected: int) -> None:
    if len(row) < expected or not row[0].strip():
        raise DataError(f"{path}, line {number}: expected {expected} fields starting with the "
                        f"movie id, found {len(row)}: {'|'.join(row)[:80]!r}")
