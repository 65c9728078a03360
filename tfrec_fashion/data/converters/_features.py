"""VBPR's binary image-feature files (``image_features_<Category>.b``, ``image_features_tradesy.b``).

The format, as published with VBPR (He & McAuley, AAAI 2016) and read by the reference snippet on
McAuley's Amazon-data page (``asin = f.read(10); a = array.array('f'); a.fromfile(f, 4096)``), is
a bare sequence of records with no header::

    10 bytes   item id, ASCII (an Amazon asin; Tradesy ids are padded to 10 bytes)
    4096 x 4   float32, little-endian (the files were written on x86): a Caffe
               reference-net fc7 feature of the item's image

Ids are stripped of surrounding spaces and NUL padding. The file is streamed one record at a time,
so only the rows of the wanted items are ever held in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tfrec_fashion.data.converters._io import open_binary
from tfrec_fashion.data.converters._tables import restrict_to_items
from tfrec_fashion.errors import DataError

ID_BYTES = 10
FEATURE_DIM = 4096
_FLOAT32_LE = np.dtype("<f4")


def iter_feature_records(path: Path, dim: int = FEATURE_DIM,
                         id_bytes: int = ID_BYTES) -> Iterator[tuple[int, str, bytes]]:
    """Yields (0-based record number, item id, raw feature bytes) of a ``.b`` file.

    Raises:
        DataError: a truncated record or an id that is not ASCII, naming the file, the record
            number and its byte offset.
    """
    record_bytes = id_bytes + 4 * dim
    size = path.stat().st_size if path.suffix != ".gz" else None
    with open_binary(path) as handle, tqdm(total=size, desc=path.name, unit="B", unit_scale=True,
                                           disable=None, leave=False) as progress:
        number = 0
        while True:
            record = handle.read(record_bytes)
            if not record:
                return
            offset = number * record_bytes
            if len(record) != record_bytes:
                raise DataError(
                    f"{path}, record {number} (byte {offset}): truncated, {len(record)} of "
                    f"{record_bytes} bytes ({id_bytes}-byte id + {dim} float32); is "
                    f"feature_dim={dim} right for this file?")
            try:
                item_id = record[:id_bytes].decode("ascii").strip(" \x00")
            except UnicodeDecodeError:
                raise DataError(f"{path}, record {number} (byte {offset}): id "
                                f"{record[:id_bytes]!r} is not ASCII; is feature_dim={dim} right "
                                "for this file?") from None
            if not item_id:
                raise DataError(f"{path}, record {number} (byte {offset}): empty item id")
            progress.update(record_bytes)
            yield number, item_id, record[id_bytes:]
            number += 1


def read_item_features(path: Path, item_ids: np.ndarray, dim: int = FEATURE_DIM,
                       id_bytes: int = ID_BYTES, canonical: Callable[[str], str] = str,
                       ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Streams a ``.b`` file and aligns its vectors to ``item_ids``.

    ``canonical`` maps both the file's ids and ``item_ids`` before they are compared (e.g.
    Tradesy's decimal ids compare as integers, so zero padding cannot hide a match).

    Returns:
        features: float32 [n_items, dim], zeros where an item has no record.
        found: bool [n_items], whether the item had a record.
        counts: "records" (all), "unused_records" (ids not in ``item_ids``) and
            "duplicate_records" (an id seen again with the identical vector; ignored).

    Raises:
        DataError: truncated record, non-ASCII id, non-finite values, or an id repeated with a
            different vector.
    """
    lookup = {canonical(str(item)): row for row, item in enumerate(item_ids)}
    features = np.zeros((len(item_ids), dim), np.float32)
    found = np.zeros(len(item_ids), bool)
    counts = {"records": 0, "unused_records": 0, "duplicate_records": 0}
    for number, item_id, raw in iter_feature_records(path, dim, id_bytes):
        counts["records"] += 1
        row = lookup.get(canonical(item_id))
        if row is None:
            counts["unused_records"] += 1
            continue
        vector = np.frombuffer(raw, _FLOAT32_LE)
        if not np.isfinite(vector).all():
            raise DataError(f"{path}, record {number}: item {item_id!r} has non-finite feature "
                            "values; is this a little-endian float32 file?")
        if found[row]:
            if np.array_equal(features[row], vector):
                counts["duplicate_records"] += 1
                continue
            raise DataError(f"{path}, record {number}: item {item_id!r} appears again with a "
                            "different feature vector")
        features[row] = vector
        found[row] = True
    return features, found, counts


MISSING_FEATURES = ("drop", "zeros")


@dataclasses.dataclass
class AlignedFeatures:
    """The result of ``align_features``: features of the kept items and what to keep.

    ``keep_items`` / ``keep_users`` / ``keep_rows`` are bool masks over the original items,
    users and user-item rows; ``user`` and ``item`` are the kept rows' re-indexed indices;
    ``found`` marks (over the original items) which had a vector.
    """

    features: np.ndarray
    found: np.ndarray
    keep_items: np.ndarray
    keep_users: np.ndarray
    keep_rows: np.ndarray
    user: np.ndarray
    item: np.ndarray


def align_features(path: Path, item_ids: np.ndarray, user: np.ndarray, item: np.ndarray,
                   n_users: int, missing: str, dim: int, skipped: dict[str, int],
                   stats: dict[str, int], rows_name: str,
                   canonical: Callable[[str], str] = str) -> AlignedFeatures:
    """Reads a ``.b`` file for ``item_ids`` and applies the missing-feature policy.

    ``missing="drop"`` (VBPR's protocol) drops items without a vector, their rows of the
    user-item relation (``user``, ``item``), then users left without rows, counting each in
    ``skipped`` (``rows_name`` names the rows, e.g. "reviews"); ``missing="zeros"`` keeps
    everything, with zero vectors.
    """
    if missing not in MISSING_FEATURES:
        raise ValueError(f"`missing_features` must be one of {MISSING_FEATURES}. "
                         f"Received: missing_features={missing!r}")
    features, found, counts = read_item_features(path, item_ids, dim, canonical=canonical)
    stats.update({f"feature_{k}": v for k, v in counts.items()})
    stats["items_without_features"] = int(np.count_nonzero(~found))
    if missing == "zeros":
        every = np.ones
        return AlignedFeatures(features, found, every(len(found), bool), every(n_users, bool),
                               every(len(user), bool), user, item)
    rows, new_user, new_item, keep_users = restrict_to_items(found, user, item, n_users)
    skipped["items_without_features"] = int(np.count_nonzero(~found))
    skipped[f"{rows_name}_of_items_without_features"] = int(np.count_nonzero(~rows))
    skipped[f"users_left_without_{rows_name}"] = int(np.count_nonzero(~keep_users))
    return AlignedFeatures(features[found], found, found, keep_users, rows, new_user, new_item)
