"""Checked columns of user-item tables read from text: numbers, whole seconds, ids, pairs.

MovieLens-100K's loader (``movielens.py``) and the converters of users' own rating and
interaction files (``converters/movielens.py``, ``converters/table.py``) read the same kind of
columns and must fail the same way, so the checks live here once. Each takes the column as a
string (or number) array and ``where``, a function from a row's offset to its place in the
source (``"ratings.csv, line 7"``), and raises ``DataError`` naming the first bad value's place.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tfrec_fashion.errors import DataError

Where = Callable[[int], str]


def lines_of(source: str, first_line: int) -> Where:
    """``where`` for a text file whose row 0 is on line ``first_line`` (2 after a header)."""
    return lambda offset: f"{source}, line {offset + first_line}"


def as_float(values: np.ndarray, column: str, where: Where) -> np.ndarray:
    """float64 [n] of a column, or DataError at the first value that is not a number."""
    try:
        return np.asarray(values).astype(np.float64)
    except (TypeError, ValueError):
        pass
    for offset, value in enumerate(values):  # only on failure: find the first bad row
        try:
            float(value)
        except (TypeError, ValueError):
            raise DataError(f"{where(offset)}: {column} {str(value)!r} is not a number.") from None
    raise AssertionError("unreachable: the vectorised conversion failed on valid values")


def as_seconds(values: np.ndarray, column: str, where: Where) -> np.ndarray:
    """int64 [n] Unix seconds, or DataError at the first value that is not a whole number."""
    seconds = as_float(values, column, where)
    bad = np.flatnonzero(~np.isfinite(seconds) | (seconds != np.floor(seconds)))
    if bad.size:
        raise DataError(f"{where(bad[0])}: {column} {str(values[bad[0]])!r} is not whole Unix "
                        "seconds.")
    return seconds.astype(np.int64)


def check_in_range(values: np.ndarray, raw: np.ndarray, column: str, low: float, high: float,
                   where: Where) -> None:
    """DataError at the first value outside [low, high] (NaN included), quoting ``raw``."""
    bad = np.flatnonzero(~((values >= low) & (values <= high)))
    if bad.size:
        raise DataError(f"{where(bad[0])}: {column} {str(raw[bad[0]])!r} is outside "
                        f"{low:g}..{high:g}.")


def check_ids(ids: np.ndarray, column: str, where: Where) -> None:
    """DataError at the first empty (or blank) id."""
    empty = np.flatnonzero(np.char.str_len(np.char.strip(np.asarray(ids, str))) == 0)
    if empty.size:
        raise DataError(f"{where(empty[0])}: empty {column}.")


def encode_ids(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns (vocabulary, int32 index of each token): numeric order when every token is a
    non-negative integer (so MovieLens's index = id - 1), else lexicographic."""
    vocab, index = np.unique(np.asarray(tokens, str), return_inverse=True)
    if all(token.isascii() and token.isdigit() for token in vocab):
        order = np.argsort([int(token) for token in vocab], kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        vocab, index = vocab[order], rank[index]
    return vocab, index.astype(np.int32).reshape(-1)


def check_unique_pairs(user_index: np.ndarray, item_index: np.ndarray, n_items: int,
                       where: Where) -> None:
    """DataError at the earliest row that repeats a (user, item) pair, naming the row it repeats."""
    pairs = user_index.astype(np.int64) * n_items + item_index
    order = np.argsort(pairs, kind="stable")
    repeats = np.flatnonzero(pairs[order][1:] == pairs[order][:-1])
    if repeats.size:
        # Of all repeated rows, report the one earliest in the file and the row it repeats.
        k = np.argmin(order[repeats + 1])
        later, earlier = order[repeats[k] + 1], order[repeats[k]]
        raise DataError(f"{where(later)}: repeats the (user, item) pair of "
                        f"{where(earlier).rpartition(', ')[2]}.")
