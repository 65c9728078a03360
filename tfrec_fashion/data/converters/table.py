"""A user's own interaction or rating log, as CSV or Parquet -> the dataset layout.

Any table with one row per event and columns naming the user and the item, optionally a rating
and a time, e.g. an order-line export::

    customer,sku,ordered_at
    c17,SKU-0042,2024-03-01T10:22:05
    c17,SKU-0107,1709290000

Columns are chosen by name (``user_col``, ``item_col``, ``rating_col``, ``timestamp_col``; the
CLI's ``--user-col`` ...); other columns are ignored. Without ``rating_col`` every row is an
implicit interaction (``interactions.csv``; repeats are kept, the split collapses them); with it
every row is an explicit rating (``ratings.csv``, with its timestamp when there is one; a
repeated (user, item) is an error naming both lines). Times are Unix seconds or ISO 8601
dates; without ``timestamp_col`` a row's time is its position in the file, so the implicit split
holds out each user's last rows. ``metadata.rating_range`` is ``rating_range`` when given (every
rating is checked against it), else the lowest and highest rating found.

CSV: UTF-8 (``.gz`` read directly), a header row, ``sep`` one character ("tab" or "\\t" for
tabs), quoting as Python's ``csv`` module reads it. Parquet: needs ``pyarrow``
(``pip install 'tfrec-fashion[parquet]'``); errors name the row (1-based) instead of the line.

Example:

    convert_csv("orders.csv", "data/orders", user_col="customer", item_col="sku",
                timestamp_col="ordered_at")
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tfrec_fashion.data import tabular
from tfrec_fashion.data.converters import _tables
from tfrec_fashion.data.converters._io import PathLike, open_binary, split_sources
from tfrec_fashion.data.dataset import FashionDataset, Interactions, Items, Ratings, Users
from tfrec_fashion.errors import ConfigError, DataError, MissingDataError

_SEPARATOR_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|",
                    "space": " "}


def convert_csv(*paths: PathLike, output_dir: PathLike | None = None, user_col: str = "user_id",
                item_col: str = "item_id", rating_col: str | None = None,
                timestamp_col: str | None = None, sep: str = ",",
                rating_range: tuple[float, float] | None = None,
                name: str | None = None) -> FashionDataset:
    """Converts a CSV (or TSV) log of interactions or ratings and saves the dataset.

    Args:
        paths: the table, then the output folder (unless ``output_dir`` is given).
        user_col, item_col: the columns holding user and item ids.
        rating_col: the column holding ratings; None = every row is an implicit interaction.
        timestamp_col: the column holding times (Unix seconds or ISO 8601); None = row order.
        sep: the separator, one character, or "tab".
        rating_range: (low, high) of the rating scale; None = the ratings' own min and max.
        name: dataset name; default the file's stem.

    Raises:
        DataError: empty file, missing column, a row with too few or many fields, an empty id,
            a rating or time that does not parse (each naming the file and line).
        ConfigError: a separator that is not one character.
    """
    path, output_dir = _one_source(paths, output_dir, "csv")
    separator = _separator(sep)
    wanted = _wanted(user_col, item_col, rating_col, timestamp_col)
    with _tables.staging(output_dir) as staging:
        columns, lines = _read_csv(path, separator, wanted)
        where = lambda offset: f"{path}, line {lines[offset]}"  # noqa: E731
        dataset = _dataset(path, columns, where, wanted, rating_range, name,
                           {"format": "csv", "separator": separator})
        _tables.save(dataset, staging, "csv", {})
    return dataset


def convert_parquet(*paths: PathLike, output_dir: PathLike | None = None,
                    user_col: str = "user_id", item_col: str = "item_id",
                    rating_col: str | None = None, timestamp_col: str | None = None,
                    rating_range: tuple[float, float] | None = None,
                    name: str | None = None) -> FashionDataset:
    """Converts a Parquet log of interactions or ratings (needs ``pyarrow``); the columns and
    rules are ``convert_csv``'s."""
    path, output_dir = _one_source(paths, output_dir, "parquet")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDataError("parquet input needs the pyarrow package: pip install "
                               "'tfrec-fashion[parquet]' (or pip install pyarrow)") from None
    import pyarrow as pa

    wanted = _wanted(user_col, item_col, rating_col, timestamp_col)
    try:
        header = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{path}: not a Parquet file ({error})") from None
    _check_header(path, header, wanted, "")
    with _tables.staging(output_dir) as staging:
        table = pq.read_table(path, columns=list(dict.fromkeys(wanted.values())))
        where = lambda offset: f"{path}, row {offset + 1}"  # noqa: E731
        columns = {role: _arrow_values(table.column(column), column, where)
                   for role, column in wanted.items()}
        dataset = _dataset(path, columns, where, wanted, rating_range, name,
                           {"format": "parquet"})
        _tables.save(dataset, staging, "parquet", {})
    return dataset


# ----------------------------------------------------------------------------- reading
def _one_source(paths: tuple[PathLike, ...], output_dir: PathLike | None,
                converter: str) -> tuple[Path, Path]:
    sources, output_dir = split_sources(paths, output_dir, converter)
    if len(sources) != 1 or not sources[0].is_file():
        raise DataError(f"{converter}: give one table file, got "
                        f"{', '.join(str(s) for s in sources)}")
    return sources[0], output_dir


def _separator(sep: str) -> str:
    separator = _SEPARATOR_NAMES.get(sep, sep)
    if len(separator) != 1 or separator in "\r\n\"":
        raise ConfigError(f"csv: the separator must be one character (or one of "
                          f"{sorted(_SEPARATOR_NAMES)}). Received: sep={sep!r}")
    return separator


def _wanted(user_col: str, item_col: str, rating_col: str | None,
            timestamp_col: str | None) -> dict[str, str]:
    """Role ("user", "item", "rating", "timestamp") -> the column name that holds it."""
    wanted = {"user": user_col, "item": item_col, "rating": rating_col,
              "timestamp": timestamp_col}
    return {role: column for role, column in wanted.items() if column is not None}


def _check_header(path: Path, header: list[str], wanted: dict[str, str], where: str) -> None:
    missing = [f"{column!r} (--{role}-col)" for role, column in wanted.items()
               if column not in header]
    if missing:
        hint = ""
        if len(header) == 1:
            found = [name for name, char in _SEPARATOR_NAMES.items() if char in header[0]
                     and len(name) > 2]
            hint = (f"; the header is one column, is the separator {found[0]!r}? (--sep)"
                    if found else "")
        raise DataError(f"{path}{where}: missing column(s) {', '.join(missing)}; the header has "
                        f"{header}{hint}")


def _read_csv(path: Path, separator: str, wanted: dict[str, str]
              ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The wanted columns as str arrays, and the line number of each row."""
    with open_binary(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=separator)
        try:
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: empty file; expected a header row naming the columns")
            header = [name.strip() for name in header]
            _check_header(path, header, wanted, ", line 1")
            positions = {role: header.index(column) for role, column in wanted.items()}
            values: dict[str, list[str]] = {role: [] for role in wanted}
            lines: list[int] = []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path}, line {reader.line_num}: {len(row)} fields, the "
                                    f"header has {len(header)} (separator {separator!r})")
                for role, position in positions.items():
                    values[role].append(row[position])
                lines.append(reader.line_num)
        except UnicodeDecodeError as error:
            raise DataError(f"{path}, line {reader.line_num + 1}: not UTF-8 text ({error})") \
                from None
        except csv.Error as error:
            raise DataError(f"{path}, line {reader.line_num}: {error}") from None
    if not lines:
        raise DataError(f"{path}: no rows after the header")
    return {role: np.array(v, dtype=str) for role, v in values.items()}, np.array(lines)


def _arrow_values(column: Any, name: str, where: Callable[[int], str]) -> np.ndarray:
    """A pyarrow column as numbers (numeric and time columns: times as Unix seconds) or str;
    DataError at the first null."""
    import pyarrow as pa

    if column.null_count:
        first = column.is_null().to_numpy(zero_copy_only=False).argmax()
        raise DataError(f"{where(int(first))}: {name} is empty (null)")
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        column = column.cast(pa.timestamp("s")).cast(pa.int64())
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return np.array(column.to_pylist(), dtype=object)
    return np.array(["" if v is None else str(v) for v in column.to_pylist()], dtype=str)


# ----------------------------------------------------------------------------- building
def _dataset(path: Path, columns: dict[str, np.ndarray], where: Callable[[int], str],
             wanted: dict[str, str], rating_range: tuple[float, float] | None,
             name: str | None, metadata: dict[str, Any]) -> FashionDataset:
    users, items = (np.asarray(columns[role]).astype(str) for role in ("user", "item"))
    tabular.check_ids(users, wanted["user"], where)
    tabular.check_ids(items, wanted["item"], where)
    user_vocab, user = tabular.encode_ids(users)
    item_vocab, item = tabular.encode_ids(items)
    timestamp = None
    if "timestamp" in columns:
        timestamp = _as_time(columns["timestamp"], wanted["timestamp"], where)
    metadata = {"source": f"{path.name} ({metadata.pop('format')})", **metadata,
                "columns": wanted,
                "timestamps": "column " + wanted["timestamp"] if timestamp is not None
                else "row order (no timestamp column)"}
    tables: dict[str, Any] = {}
    if "rating" in columns:
        value = tabular.as_float(columns["rating"], wanted["rating"], where)
        finite = value[np.isfinite(value)]
        low, high = (rating_range if rating_range is not None
                     else (float(finite.min()), float(finite.max())) if finite.size else (0, 0))
        if low > high:
            raise ConfigError(f"rating_range must be (low, high) with low <= high. Received: "
                              f"rating_range={rating_range}")
        tabular.check_in_range(value, columns["rating"], wanted["rating"], low, high, where)
        tabular.check_unique_pairs(user, item, len(item_vocab), where)
        tables["ratings"] = Ratings(user=user, item=item, value=value.astype(np.float32),
                                    timestamp=timestamp)
        metadata["rating_range"] = [float(low), float(high)]
    else:
        if timestamp is None:
            timestamp = np.arange(len(user), dtype=np.int64)
        tables["interactions"] = Interactions(user=user, item=item, timestamp=timestamp)
    return FashionDataset(
        name=name or path.name.split(".")[0], users=Users(ids=user_vocab),
        items=Items(ids=item_vocab, category=np.full(len(item_vocab), "item")),
        metadata=metadata, **tables)


def _as_time(values: np.ndarray, column: str, where: Callable[[int], str]) -> np.ndarray:
    """int64 Unix seconds from whole numbers or ISO 8601 dates (a column may mix them)."""
    try:
        return tabular.as_seconds(values, column, where)  # all numbers: one vectorised pass
    except DataError:
        pass
    # Dates become their seconds; numbers stay as they are for as_seconds' checks.
    seconds = np.array(values, dtype=object)
    for offset, value in enumerate(values):
        try:
            float(value)
        except (TypeError, ValueError):
            try:
                seconds[offset] = np.datetime64(str(value).strip().removesuffix("Z"),
                                                "s").astype(np.int64)
            except ValueError:
                raise DataError(f"{where(offset)}: {column} {str(value)!r} is neither Unix "
                                "seconds nor an ISO 8601 date") from None
    return tabular.as_seconds(seconds, column, where)
