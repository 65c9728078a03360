"""Reading public files record by record, with errors that name the file and line.

Every converter reads its inputs through these helpers, so a malformed file always fails the
same way: a ``DataError`` saying ``<file>, line <n>: <what is wrong>``. Gzipped files (``.gz``,
as most public releases ship) are read transparently. Progress bars appear on a terminal only.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tfrec_fashion.errors import DataError, MissingDataError

logger = logging.getLogger("tfrec_fashion.data.converters")

PathLike = str | Path


def split_sources(paths: Sequence[PathLike], output_dir: PathLike | None,
                  converter: str) -> tuple[list[Path], Path]:
    """Splits ``convert(*paths)`` into sources and the output folder (the last path by default).

    The CLI calls every converter as ``convert(source, ..., output_dir)``; Python callers may
    instead pass ``output_dir=`` by keyword.
    """
    paths = [Path(p) for p in paths]
    if output_dir is None:
        if len(paths) < 2:
            raise TypeError(f"{converter}: give the source path(s) and then the output folder, "
                            f"got {len(paths)} path(s)")
        *paths, output_dir = paths
    if not paths:
        raise TypeError(f"{converter}: no source path given")
    for path in paths:
        if not path.exists():
            raise MissingDataError(f"{converter}: source {path} does not exist")
    return paths, Path(output_dir)


def require_file(path: PathLike, what: str) -> Path:
    """Returns ``path`` as a Path, or raises MissingDataError naming what the file should hold."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path} does not exist (expected {what})")
    return path


def open_binary(path: Path) -> io.BufferedIOBase:
    """Opens a file for reading bytes, un-gzipping ``*.gz`` files."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def iter_lines(path: Path, desc: str | None = None) -> Iterator[tuple[int, str]]:
    """Yields (1-based line number, line without its newline) of a UTF-8 text file, skipping
    blank lines; a progress bar counts lines on a terminal."""
    with open_binary(path) as handle:
        lines = tqdm(handle, desc=desc or path.name, unit=" lines", disable=None, leave=False)
        for number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{path}, line {number}: not UTF-8 text ({error})") from None
            line = line.rstrip("\r\n")
            if line.strip():
                yield number, line


def parse_record(line: str, path: Path, number: int, python_literals: bool = True) -> dict:
    """Parses one line holding a JSON object, or (``python_literals``) a Python dict literal
    such as McAuley's 2014 "loose JSON" ``{'asin': '0000031852', 'title': ...}`` lines, which are
    read with ``ast.literal_eval`` (never ``eval``)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as json_error:
        if not python_literals:
            raise DataError(f"{path}, line {number}: not valid JSON ({json_error})") from None
        try:
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise DataError(f"{path}, line {number}: neither JSON nor a Python literal "
                            f"({json_error}): {line[:80]!r}") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}, line {number}: expected an object, got "
                        f"{type(record).__name__}: {line[:80]!r}")
    return record


def iter_records(path: Path, python_literals: bool = True,
                 desc: str | None = None) -> Iterator[tuple[int, dict]]:
    """Yields (line number, dict) of a JSON-lines file (see ``parse_record``)."""
    for number, line in iter_lines(path, desc):
        yield number, parse_record(line, path, number, python_literals)


def require_fields(record: dict, fields: Sequence[str], path: Path, number: int,
                   types: dict[str, type | tuple[type, ...]] | None = None) -> None:
    """Raises DataError naming the file, line and field when a field is absent or mistyped."""
    missing = [field for field in fields if field not in record or record[field] is None]
    if missing:
        raise DataError(f"{path}, line {number}: missing field(s) {missing}; "
                        f"the record has {sorted(record)}")
    for field, expected in (types or {}).items():
        if field in record and not isinstance(record[field], expected):
            names = expected.__name__ if isinstance(expected, type) else \
                " or ".join(t.__name__ for t in expected)
            raise DataError(f"{path}, line {number}: field {field!r} should be {names}, got "
                            f"{type(record[field]).__name__} {record[field]!r:.80}")


def load_json(path: Path) -> Any:
    """Reads a whole JSON document, naming the file and line of a syntax error."""
    with open_binary(path) as handle:
        text = handle.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}, line {error.lineno}: not valid JSON ({error.msg})") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from None


def iter_fitb_questions(path: Path) -> Iterator[tuple[str, dict]]:
    """Yields ("<file>, question <k>", question) of a fill-in-the-blank JSON file: a list of
    ``{"question": [...], "answers": [non-empty list], ...}`` objects (Polyvore Outfits, CTL)."""
    questions = load_json(path)
    if not isinstance(questions, list):
        raise DataError(f"{path}: expected a list of fill-in-the-blank questions")
    for k, question in enumerate(questions):
        where = f"{path}, question {k}"
        if not isinstance(question, dict) or not isinstance(question.get("question"), list) \
                or not isinstance(question.get("answers"), list) or not question["answers"]:
            raise DataError(f"{where}: expected {{'question': [...], 'answers': [...]}}, got "
                            f"{question!r:.80}")
        yield where, question


def as_number(value: Any, path: Path, number: int, field: str, kind: type = float) -> Any:
    """Converts ``value`` to ``kind`` (float or int), or raises DataError naming the line."""
    if isinstance(value, bool):
        raise DataError(f"{path}, line {number}: {field} {value!r} is not a number")
    try:
        converted = kind(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}, line {number}: {field} {value!r} is not a number") from None
    if kind is int and isinstance(value, float) and value != converted:
        raise DataError(f"{path}, line {number}: {field} {value!r} is not an integer")
    return converted


def log_skipped(converter: str, skipped: dict[str, int]) -> None:
    """Logs every non-zero skip count (they are also kept in the dataset's metadata)."""
    for reason, count in skipped.items():
        if count:
            logger.warning("%s: skipped %d %s", converter, count, reason.replace("_", " "))
